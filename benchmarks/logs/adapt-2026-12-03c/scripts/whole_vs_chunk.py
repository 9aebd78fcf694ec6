import sys; sys.path.insert(0,'benchmarks'); sys.path.insert(0,'.')
import numpy as np
from bigseg import checkpoint, store as st, annotations as ann, object_rule as orule
from object_rule_threshold import ruled
m='benchmarks/work/adapt/crushed-4100-40-corrective-adapted.pt'
rule=orule.ObjectRule.from_dict(checkpoint.read(m)["meta"]["adapted"]["object_rule"])
for s in ['benchmarks/work/adapt/crushed-4100.zarr','benchmarks/work/adapt/crushed-4101.zarr']:
    la=st.open_array(s,'labels'); labels=np.asarray(la[:]); truth=np.asarray(st.open_array(s,'truth')[:]); image=np.asarray(st.open_array(s,'image')[:])
    un=(np.asarray(st.open_array(s,ann.LAYER)[:])==ann.NONE) if ann.has_layer(s) else np.ones(labels.shape,bool)
    def iou(o):
        a=(o==2)&un; b=(truth==2)&un; return (a&b).sum()/(a|b).sum()
    print(s, la.chunks, 'none %.4f'%iou(labels), 'chunked %.4f'%iou(ruled(labels,image,rule,la.chunks)), 'whole %.4f'%iou(orule.apply(rule,labels,image)[0]))
