import sys; sys.path.insert(0,'benchmarks'); sys.path.insert(0,'.')
import numpy as np
from scipy import ndimage
from bigseg import checkpoint, store as st, object_rule as orule
from object_rule_threshold import ruled
def auc(x,y):
    from scipy.stats import rankdata
    r=rankdata(x); n1=y.sum(); n0=len(y)-n1
    return (r[y==1].sum()-n1*(n1+1)/2)/(n1*n0)
style='crushed'
m=f'benchmarks/work/adapt/{style}-4100-40-corrective-adapted.pt'
rule=orule.ObjectRule.from_dict(checkpoint.read(m)["meta"]["adapted"]["object_rule"])
for s in [f'benchmarks/work/adapt/{style}-4100.zarr',f'benchmarks/work/adapt/{style}-4101.zarr']:
    labels=np.asarray(st.open_array(s,'labels')[:]); truth=np.asarray(st.open_array(s,'truth')[:]); image=np.asarray(st.open_array(s,'image')[:])
    ob=orule.find(labels,image,2)
    idx=np.arange(1,ob.n+1)
    tv=ndimage.mean((truth==2).astype(float),ob.ids,idx)
    y=(tv>0.5).astype(int)
    area=np.bincount(ob.ids.ravel())[1:]
    g=orule.grey(image); graw=image[...,:3].astype(np.float32).mean(-1)
    std=ndimage.standard_deviation(graw,ob.ids,idx)
    near=ndimage.grey_dilation(ob.ids,size=(5,5)); ring=(near>0)&(ob.ids==0)
    ringmean=ndimage.mean(g,np.where(ring,near,0),idx)
    sat=(image[...,:3].max(-1).astype(float)-image[...,:3].min(-1))
    satm=ndimage.mean(sat,ob.ids,idx)
    p=rule.probability(ob.features)
    keep=~ob.on_border
    print(s[-9:], 'objects',keep.sum(),'true',y[keep].sum(),'false',(1-y[keep]).sum(), 'false px',area[keep&(y==0)].sum())
    for name,v in [('darkest',ob.features[:,0]),('mean',ob.features[:,1]),('round',ob.features[:,2]),('area',np.log(area)),('std',std),('ringcontrast',ringmean-ob.features[:,1]),('sat',satm),('rule p',p)]:
        print('  %-13s AUC %.3f'%(name,auc(v[keep],y[keep])))
    rej=(p<0.25)&keep
    print('  rule rejects: true',(rej&(y==1)).sum(),'false',(rej&(y==0)).sum(),' false remaining px', area[keep&(y==0)&~rej].sum(), 'sizes median', np.median(area[keep&(y==0)&~rej]))
    # oracle logistic on all features, in-sample
    X=np.stack([ob.features[:,0],ob.features[:,1],ob.features[:,2],np.log(area),std,ringmean-ob.features[:,1],satm],1)[keep]
    r2=orule.fit(X,y[keep],2)
    z=(X-np.array(r2.mean))/np.array(r2.scale); pp=1/(1+np.exp(-(z@np.array(r2.weights)+r2.bias)))
    print('  oracle all-feature AUC %.3f'%auc(pp,y[keep]), 'weights',np.round(r2.weights,2))
    r3=orule.fit(X[:,:3],y[keep],2); z=(X[:,:3]-np.array(r3.mean))/np.array(r3.scale); pp=1/(1+np.exp(-(z@np.array(r3.weights)+r3.bias)))
    print('  oracle 3-feature AUC %.3f'%auc(pp,y[keep]))
