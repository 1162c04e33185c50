"""tlsjax: the S-tau two-level-system model of Schechter & Stamp (PRB 88, 174202 (2013))
as a differentiable JAX model.

The physics flows one way, and so do the sub-packages (each imports only those
below it: parallel -> model -> observables -> fit -> studies -> plot -> cli):
sample -> couplings -> ES reduction -> P_S(E), T_U -> observables -> fits, and
sample -> full Hamiltonian (Eq. 1) -> Monte Carlo (anneal, temper, descend).
"""

from . import _startup  # noqa: F401 - first: the `tlsjax` program's Ctrl-C during imports
from .fit._data import Curve as Curve
from .fit._data import load_curve as load_curve
from .fit._data import parse_curve as parse_curve
from .fit._fit import PARAMETERS as PARAMETERS
from .fit._fit import FitResult as FitResult
from .fit._fit import least_squares as least_squares
from .fit._fit import propagate as propagate
from .fit._fit_curves import fit_curves as fit_curves
from .fit._fit_stau import fit_kappa as fit_kappa
from .fit._fit_stau import fit_targets as fit_targets
from .fit._own import compare_models as compare_models
from .fit._own import fit_model as fit_model
from .fit._params import Parameter as Parameter
from .fit._params import Parameters as Parameters
from .fit._select import select_kappa_model as select_kappa_model
from .fit._sensitivity import SensitivityResult as SensitivityResult
from .fit._sensitivity import sensitivity as sensitivity
from .model._couplings import Couplings as Couplings
from .model._couplings import ExplicitAmplitudes as ExplicitAmplitudes
from .model._couplings import GaussianAmplitudes as GaussianAmplitudes
from .model._couplings import SymmetricGaussianAmplitudes as SymmetricGaussianAmplitudes
from .model._descent import DescentStats as DescentStats
from .model._descent import Stability as Stability
from .model._descent import descend as descend
from .model._descent import stability as stability
from .model._dipolar import DipolarCouplings as DipolarCouplings
from .model._dipolar import DipolarSTauCouplings as DipolarSTauCouplings
from .model._dipolar import angular_factor as angular_factor
from .model._dipolar import dipolar_couplings as dipolar_couplings
from .model._dipolar import random_orientations as random_orientations
from .model._es import DEFAULT_TOP_K as DEFAULT_TOP_K
from .model._es import ESResult as ESResult
from .model._es import es_reduction as es_reduction
from .model._es import simulate as simulate
from .model._hamiltonian import Hamiltonian as Hamiltonian
from .model._hamiltonian import HamiltonianParams as HamiltonianParams
from .model._hamiltonian import hamiltonian as hamiltonian
from .model._lattice import FCC as FCC
from .model._lattice import AbstractLattice as AbstractLattice
from .model._lattice import Realization as Realization
from .model._lattice import Sample as Sample
from .model._lattice import SimpleCubic as SimpleCubic
from .model._mc import MCState as MCState
from .model._mc import SwapStats as SwapStats
from .model._mc import anneal as anneal
from .model._mc import default_tol as default_tol
from .model._mc import init_state as init_state
from .model._mc import metropolis as metropolis
from .model._mc import tempering as tempering
from .model._mc_run import MCConfig as MCConfig
from .model._mc_run import MCResult as MCResult
from .model._mc_run import mc_key as mc_key
from .model._mc_run import minimize as minimize
from .model._mc_run import run_mc as run_mc
from .model._params import ModelParams as ModelParams
from .model._regime_params import DiluteCrystal as DiluteCrystal
from .model._regime_params import DipolarDefects as DipolarDefects
from .model._regime_params import MixedCrystal as MixedCrystal
from .model._regime_params import RegimeES as RegimeES
from .model._theta import AbstractTheta as AbstractTheta
from .model._theta import HardTheta as HardTheta
from .model._theta import SoftTheta as SoftTheta
from .model._theta import crossover_temperature as crossover_temperature
from .model._theta import p_s as p_s
from .model._theta import theta_from_width as theta_from_width
from .observables._dos import Crossover as Crossover
from .observables._dos import StauDOS as StauDOS
from .observables._dos import StauTLS as StauTLS
from .observables._dos import crossover as crossover
from .observables._dos import phi_s as phi_s
from .observables._dos import stau_dos as stau_dos
from .observables._dos import stau_tls as stau_tls
from .observables._flip import SpeciesEnergies as SpeciesEnergies
from .observables._flip import mean_field_energies as mean_field_energies
from .observables._flip import mean_field_flip_energies as mean_field_flip_energies
from .observables._flip import single_flip_energies as single_flip_energies
from .observables._material import Material as Material
from .observables._mc_obs import StateMeasurement as StateMeasurement
from .observables._mc_obs import es_estimator as es_estimator
from .observables._mc_obs import measure_state as measure_state
from .observables._regime_obs import regime_observables as regime_observables
from .observables._stm import debye_specific_heat as debye_specific_heat
from .observables._stm import max_relaxation_rate as max_relaxation_rate
from .observables._stm import mean_free_path as mean_free_path
from .observables._stm import mfp_over_wavelength as mfp_over_wavelength
from .observables._stm import qinv as qinv
from .observables._stm import qinv_relaxation as qinv_relaxation
from .observables._stm import qinv_resonant as qinv_resonant
from .observables._stm import sound_velocity_shift as sound_velocity_shift
from .observables._stm import thermal_conductivity as thermal_conductivity
from .observables._stm import thermal_conductivity_closed_form as thermal_conductivity_closed_form
from .observables._stm import tls_specific_heat as tls_specific_heat
from .observables._table import TabulatedStauTLS as TabulatedStauTLS
from .observables._table import tabulate_stau as tabulate_stau
from .observables._tls import AbstractTLS as AbstractTLS
from .observables._tls import ConstantC as ConstantC
from .parallel._distributed import distributed as distributed
from .parallel._ensemble import RunningStats as RunningStats
from .parallel._ensemble import disorder_average as disorder_average
from .parallel._ensemble import mean_and_stderr as mean_and_stderr
from .parallel._sharding import device_mesh as device_mesh
from .studies._dipole_mc import TauDOSCheck as TauDOSCheck
from .studies._dipole_mc import tau_dos_mc as tau_dos_mc
from .studies._mc_study import MCStudy as MCStudy
from .studies._mc_study import mc_atilde_scan as mc_atilde_scan
from .studies._mc_study import run_mc_study as run_mc_study
from .studies._regimes import RegimeScan as RegimeScan
from .studies._regimes import dilution_scan as dilution_scan
from .studies._regimes import dipole_scan as dipole_scan
from .studies._regimes import mixed_scan as mixed_scan
from .studies._regimes import paper_laws as paper_laws
from .studies._regimes import run_regimes as run_regimes

__version__ = "0.1.0"
