"""tlsjax: the S-tau two-level-system model of Schechter & Stamp (PRB 88, 174202 (2013))
as a differentiable JAX model.

The physics flows one way, and so does this API:
sample -> couplings -> ES reduction -> P_S(E), T_U -> observables -> fits.
"""

from ._couplings import Couplings as Couplings
from ._couplings import ExplicitAmplitudes as ExplicitAmplitudes
from ._couplings import GaussianAmplitudes as GaussianAmplitudes
from ._es import ESResult as ESResult
from ._es import es_reduction as es_reduction
from ._es import simulate as simulate
from ._lattice import FCC as FCC
from ._lattice import AbstractLattice as AbstractLattice
from ._lattice import Realization as Realization
from ._lattice import Sample as Sample
from ._lattice import SimpleCubic as SimpleCubic
from ._params import ModelParams as ModelParams
from ._theta import AbstractTheta as AbstractTheta
from ._theta import HardTheta as HardTheta
from ._theta import SoftTheta as SoftTheta
from ._theta import crossover_temperature as crossover_temperature
from ._theta import p_s as p_s
from ._theta import theta_from_width as theta_from_width

__version__ = "0.1.0"
