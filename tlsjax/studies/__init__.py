"""The paper's computations that combine the layers (Figs. 2, 4; Sec. III B).

The public API is re-exported from `tlsjax`; the modules here are private."""
