"""tlsjax: the S-tau two-level-system model of Schechter & Stamp (PRB 88, 174202 (2013))
as a differentiable JAX model.

The physics flows one way, and so does this API:
sample -> couplings -> ES reduction -> P_S(E), T_U -> observables -> fits.
"""

from ._couplings import Couplings as Couplings
from ._couplings import ExplicitAmplitudes as ExplicitAmplitudes
from ._couplings import GaussianAmplitudes as GaussianAmplitudes
from ._data import Curve as Curve
from ._data import load_curve as load_curve
from ._data import parse_curve as parse_curve
from ._dos import Crossover as Crossover
from ._dos import StauDOS as StauDOS
from ._dos import StauTLS as StauTLS
from ._dos import crossover as crossover
from ._dos import phi_s as phi_s
from ._dos import stau_dos as stau_dos
from ._dos import stau_tls as stau_tls
from ._ensemble import RunningStats as RunningStats
from ._ensemble import disorder_average as disorder_average
from ._ensemble import mean_and_stderr as mean_and_stderr
from ._es import DEFAULT_TOP_K as DEFAULT_TOP_K
from ._es import ESResult as ESResult
from ._es import es_reduction as es_reduction
from ._es import simulate as simulate
from ._fit import PARAMETERS as PARAMETERS
from ._fit import FitResult as FitResult
from ._fit import least_squares as least_squares
from ._fit import propagate as propagate
from ._fit_stau import fit_kappa as fit_kappa
from ._fit_stau import fit_targets as fit_targets
from ._lattice import FCC as FCC
from ._lattice import AbstractLattice as AbstractLattice
from ._lattice import Realization as Realization
from ._lattice import Sample as Sample
from ._lattice import SimpleCubic as SimpleCubic
from ._material import Material as Material
from ._params import ModelParams as ModelParams
from ._sensitivity import SensitivityResult as SensitivityResult
from ._sensitivity import sensitivity as sensitivity
from ._sharding import device_mesh as device_mesh
from ._stm import debye_specific_heat as debye_specific_heat
from ._stm import max_relaxation_rate as max_relaxation_rate
from ._stm import mean_free_path as mean_free_path
from ._stm import mfp_over_wavelength as mfp_over_wavelength
from ._stm import qinv as qinv
from ._stm import qinv_relaxation as qinv_relaxation
from ._stm import qinv_resonant as qinv_resonant
from ._stm import sound_velocity_shift as sound_velocity_shift
from ._stm import thermal_conductivity as thermal_conductivity
from ._stm import thermal_conductivity_closed_form as thermal_conductivity_closed_form
from ._stm import tls_specific_heat as tls_specific_heat
from ._table import TabulatedStauTLS as TabulatedStauTLS
from ._table import tabulate_stau as tabulate_stau
from ._theta import AbstractTheta as AbstractTheta
from ._theta import HardTheta as HardTheta
from ._theta import SoftTheta as SoftTheta
from ._theta import crossover_temperature as crossover_temperature
from ._theta import p_s as p_s
from ._theta import theta_from_width as theta_from_width
from ._tls import AbstractTLS as AbstractTLS
from ._tls import ConstantC as ConstantC

__version__ = "0.1.0"
