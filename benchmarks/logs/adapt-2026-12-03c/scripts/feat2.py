import sys; sys.path.insert(0,'benchmarks'); sys.path.insert(0,'.')
import numpy as np
from scipy import ndimage
from bigseg import checkpoint, store as st, object_rule as orule, annotations as ann
style=sys.argv[1]
def feats(labels,image):
    ob=orule.find(labels,image,2); idx=np.arange(1,ob.n+1)
    area=np.bincount(ob.ids.ravel())[1:]
    g=orule.grey(image); graw=image[...,:3].astype(np.float32).mean(-1)
    std=ndimage.standard_deviation(graw,ob.ids,idx)
    near=ndimage.grey_dilation(ob.ids,size=(5,5)); ring=(near>0)&(ob.ids==0)&(labels!=2)
    ringmean=ndimage.mean(g,np.where(ring,near,0),idx)
    sat=(image[...,:3].max(-1).astype(float)-image[...,:3].min(-1)); satm=ndimage.mean(sat,ob.ids,idx)
    X=np.stack([ob.features[:,0],ob.features[:,1],ob.features[:,2],std,ringmean-ob.features[:,1],np.log(area),satm],1)
    return ob,np.nan_to_num(X)
sets={'3':[0,1,2],'3+std':[0,1,2,3],'3+std+ring':[0,1,2,3,4],'all7':[0,1,2,3,4,5,6]}
data={}
for seed in (4100,4101):
    s=f'benchmarks/work/adapt/{style}-{seed}.zarr'
    labels=np.asarray(st.open_array(s,'labels')[:]); truth=np.asarray(st.open_array(s,'truth')[:]); image=np.asarray(st.open_array(s,'image')[:])
    un=(np.asarray(st.open_array(s,ann.LAYER)[:])==ann.NONE) if ann.has_layer(s) else np.ones(labels.shape,bool)
    ob,X=feats(labels,image)
    data[seed]=(labels,truth,image,un,ob,X)
labels,truth,image,un,ob,X=data[4100]
painted=np.asarray(st.open_array(f'benchmarks/work/adapt/{style}-4100.zarr',ann.LAYER)[:])
sides=orule.painted_sides(ob,painted,2); use=(sides>=0)&~ob.on_border
print(style,'painted objects: void',(sides[use]==1).sum(),'not',(sides[use]==0).sum())
for name,cols in sets.items():
    r=orule.fit(X[use][:,cols],sides[use],2)
    if r is None: print(name,'no rule'); continue
    for thr in (0.25,0.5):
        row=[]
        for seed in (4100,4101):
            labels,truth,image,un,ob2,X2=data[seed]
            p=r.probability(X2[:,cols]); drop=(p<thr)&~ob2.on_border
            idx=np.arange(1,ob2.n+1); y=ndimage.mean((truth==2).astype(float),ob2.ids,idx)>0.5
            out=labels.copy(); out[np.concatenate([[False],drop])[ob2.ids]]=0  # paste (approx; ring majority in real rule)
            a=(out==2)&un; b=(truth==2)&un
            row.append('%d: IoU %.3f area %.2f rej true %d false %d'%(seed,(a&b).sum()/(a|b).sum(),a.sum()/b.sum(),(drop&y).sum(),(drop&~y).sum()))
        print('  %-12s thr %.2f | %s'%(name,thr,' | '.join(row)))
print('--- size floor: judge only objects at least as large as the k-th smallest painted object')
labels,truth,image,un,ob,X=data[4100]
area0=np.bincount(ob.ids.ravel())[1:]
cols=[0,1,2]
r=orule.fit(X[use][:,cols],sides[use],2)
pa=area0[use]; print('painted areas void', np.sort(pa[sides[use]==1])[:8], 'not', np.sort(pa[sides[use]==0])[:8])
for floor in (0, 20, 40, 60, 100, int(pa.min())):
    row=[]
    for seed in (4100,4101):
        labels,truth,image,un,ob2,X2=data[seed]
        ar=np.bincount(ob2.ids.ravel())[1:]
        p=r.probability(X2[:,cols]); drop=(p<0.25)&~ob2.on_border&(ar>=floor)
        idx=np.arange(1,ob2.n+1); y=ndimage.mean((truth==2).astype(float),ob2.ids,idx)>0.5
        out=labels.copy(); out[np.concatenate([[False],drop])[ob2.ids]]=0
        a=(out==2)&un; b=(truth==2)&un
        row.append('%d: IoU %.3f area %.2f rej true %d (%d px) false %d (%d px)'%(seed,(a&b).sum()/(a|b).sum(),a.sum()/b.sum(),(drop&y).sum(),ar[drop&y].sum(),(drop&~y).sum(),ar[drop&~y].sum()))
    print('  floor %3d | %s'%(floor,' | '.join(row)))
