"""`fit`: learn a skew-symmetric network that generates a given oscillation.

One concept per module: `_checks` (argument checks), `_spectrum` (`spectral_peaks`),
`_model` (`SkewGenerator`), `_stepping` (integration and interpolation), `_inputs`
(`fit`'s checked inputs), `_init` (spectral initialisation), `_loss` (what is
minimised), `_train` (`fit`), `_baselines` (mean, harmonic, AR forecasts), `_scores`
(metrics, the choice of the forecast, and the verdict), `_result` (`FitResult`,
`load_fit`), `_plot` (figures), `_csv` (`fit_csv`).
"""

from ._csv import fit_csv as fit_csv
from ._loss import _loss_terms as _loss_terms
from ._loss import _make_data as _make_data
from ._model import SkewGenerator as SkewGenerator
from ._result import FitResult as FitResult
from ._result import load_fit as load_fit
from ._spectrum import spectral_peaks as spectral_peaks
from ._stepping import _adjoint_object as _adjoint_object
from ._stepping import _Stepping as _Stepping
from ._train import fit as fit
