"""The S-tau model: samples, couplings, the ES reduction (App. B 2) and its Theta, the
full Hamiltonian (Eq. 1) and its Monte Carlo.

The public API is re-exported from `tlsjax`; the modules here are private."""
