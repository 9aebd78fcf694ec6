# The old classic-only model: git show 53413e1:bigseg/weights/concrete-light-unet.pt > /tmp/router/old-light-unet.pt
import json, time, sys
from pathlib import Path
from bigseg.trust import measure_slab
work=Path('benchmarks/work/router')
old='/tmp/router/old-light-unet.pt'; new='bigseg/weights/concrete-light-unet.pt'
names=[('crushed',4200),('gravel',4200)]+[('classic',s) for s in range(100,108)]+[('random',7000000+k) for k in (2,11,0,8,15)]
out=open('benchmarks/work/router/acc.jsonl','a')
for style,seed in names:
    store=work/f'{style}-{seed}-2048.zarr'
    for name,m in (('old',old),('new',new)):
        t=time.time()
        r=measure_slab(store,m)
        keep={k:r[k] for k in r if k!='confidence'}
        rec={'style':style,'seed':seed,'model':name,'s':round(time.time()-t,1),**keep}
        print(json.dumps(rec,default=str)[:400],flush=True); out.write(json.dumps(rec,default=str)+'\n'); out.flush()
