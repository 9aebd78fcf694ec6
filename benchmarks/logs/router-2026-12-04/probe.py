# The old classic-only model: git show 53413e1:bigseg/weights/concrete-light-unet.pt > /tmp/router/old-light-unet.pt
import sys, json, time
from pathlib import Path
from bigseg.trust import synthetic_store
from bigseg.infer import stability
from bigseg.infer.windows import Grid
import zarr
work=Path('benchmarks/work/router')
old='/tmp/router/old-light-unet.pt'; new='bigseg/weights/concrete-light-unet.pt'
jobs=[('classic',s,2048) for s in range(100,108)]+[('random',7000000+k,2048) for k in range(16)]+[(st,4200,2048) for st in ('crushed','gravel','contrast')]
out=open('benchmarks/work/router/probe.jsonl','a')
for style,seed,size in jobs:
    t=time.time()
    store=synthetic_store(work,style,seed,size)
    h,w=zarr.open_group(str(store),mode='r')['image'].shape[:2]
    grid=Grid(h,w,900,128)
    o=stability.sample_origins(grid)
    r={'style':style,'seed':seed}
    for name,m in (('old',old),('new',new)):
        s=stability.measure(m,str(store),o,grid,threads=2)
        r[name]={'early':s['early_feature_shift'],'all':s['feature_shift']}
    r['s']=round(time.time()-t,1)
    print(json.dumps(r),flush=True); out.write(json.dumps(r)+'\n'); out.flush()
