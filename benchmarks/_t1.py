import time, json, numpy as np
import pytest_neuronperf.engine.paired as p
from paired_models import OneUnit, ThreeUnits
if __name__ == "__main__":
    t=time.time()
    reps = p.compare(OneUnit, ThreeUnits, np.ones((1, 96)), framework="python", duration=1, n_models=[1,"max"], workers_per_model=1, verbosity=1)
    for r in reps:
        print(r["status"], r.get("error"), r["throughput_avg"], r["interference"])
        pp=r["paired"]; print({k: pp.get(k) for k in ("verdict","delta","interval","p_adjusted","rounds","seed","order","base_status")})
    print(time.time()-t)
