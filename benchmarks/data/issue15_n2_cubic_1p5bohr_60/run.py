import time
from qdlab.campaign.seed003_excitons import FineStructureSettings, reproduce_seed003
s = FineStructureSettings(sizes=[2], phases=["cubic"], cuboids=[], spacing_B=1.5, n_states=60, block=24,
                          max_calls=40, max_memory_GB=18.0)
t0 = time.time()
res = reproduce_seed003("out", s, log=lambda m: print(f"[{time.time()-t0:7.0f} s] {m}", flush=True))
print(res, flush=True)
