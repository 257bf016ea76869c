"""Campaigns: a grid of recipes × a chain of workflows × engines, run on a local pool or a Dask
cluster (SLURM/PBS through dask-jobqueue), results in the store (:mod:`qdlab.store.results`).

Entry points: :func:`load_spec` / :func:`spec_from_dict` (TOML/YAML/JSON, pydantic),
:func:`plan_campaign` (tasks + cost estimate), :func:`run_campaign` (resumable execution),
:func:`campaign_status`; HPC round trip in :mod:`qdlab.campaign.hpc`; paper reproductions in
:mod:`qdlab.campaign.reproduce`; :func:`qdlab.campaign.demo.run_demo` for the README's main job (`qdlab demo`).
"""

from qdlab.campaign.run import CampaignResult, Plan, campaign_status, plan_campaign, run_campaign, validate_campaign
from qdlab.campaign.spec import CampaignSpec, Task, expand, load_spec, spec_from_dict

__all__ = ["CampaignResult", "CampaignSpec", "Plan", "Task", "campaign_status", "expand", "load_spec",
           "plan_campaign", "run_campaign", "spec_from_dict", "validate_campaign"]
