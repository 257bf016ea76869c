"""qdlab.experiment: high-throughput LARP synthesis of CsPbBr3 nanocrystals (seed 002, SCIENCE.md §8).

plate design → OT-2 protocol → plate-reader import → vectorised Gaussian fits → views → models + SHAP.
Modules: :mod:`~qdlab.experiment.plate`, :mod:`~qdlab.experiment.opentrons`,
:mod:`~qdlab.experiment.platereader`, :mod:`~qdlab.experiment.plfit`, :mod:`~qdlab.experiment.views`,
:mod:`~qdlab.experiment.models`, :mod:`~qdlab.experiment.synthetic`. Nothing heavy is imported here.
"""

from qdlab.experiment.plate import PlateDesign, design_plate, synthesis_table, wellmap_frame
from qdlab.experiment.plfit import GaussFits, fit_gaussians, fit_table

__all__ = ["GaussFits", "PlateDesign", "design_plate", "fit_gaussians", "fit_table", "synthesis_table",
           "wellmap_frame"]
