import sys; sys.path.insert(0,'benchmarks'); sys.path.insert(0,'.')
import numpy as np
from scipy import ndimage
from bigseg import checkpoint, store as st, annotations as ann, object_rule as orule
from object_rule_threshold import ruled
for style in ['crushed','contrast']:
  m=f'benchmarks/work/adapt/{style}-4100-40-corrective-adapted.pt'
  ad=checkpoint.read(m)["meta"]["adapted"]; rule=ad.get("object_rule"); rule=orule.ObjectRule.from_dict(rule) if rule else None
  for s in [f'benchmarks/work/adapt/{style}-4100.zarr',f'benchmarks/work/adapt/{style}-4101.zarr']:
    la=st.open_array(s,'labels'); labels=np.asarray(la[:]); truth=np.asarray(st.open_array(s,'truth')[:]); image=np.asarray(st.open_array(s,'image')[:])
    un=(np.asarray(st.open_array(s,ann.LAYER)[:])==ann.NONE) if ann.has_layer(s) else np.ones(labels.shape,bool)
    def iou(o):
        a=(o==2)&un; b=(truth==2)&un; return (a&b).sum()/(a|b).sum(), a.sum()/b.sum()
    r=ruled(labels,image,rule,la.chunks) if rule else labels
    d4=r.copy(); d4[ndimage.binary_dilation(r==2)]=2
    d8=r.copy(); d8[ndimage.binary_dilation(r==2,structure=np.ones((3,3)))]=2
    e4=r.copy(); e4[(r==2)&~ndimage.binary_erosion(r==2)]=0
    print(style, s[-9:], 'ruled %.3f (area %.2f)'%iou(r), 'dil4 %.3f (%.2f)'%iou(d4), 'dil8 %.3f (%.2f)'%iou(d8), 'ero4 %.3f (%.2f)'%iou(e4))
