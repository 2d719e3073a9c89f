//! The running controller behind the management API.

use std::collections::BTreeMap;
use std::sync::Arc;

use fc_frames::FcId;

use crate::api::views::{
    CountersView, FreeView, PeerState, PeerView, RealVolumeView, RealVolumesView, ReplicaState,
    UseView, VersionView, VolumeIoView, VolumeView,
};
use crate::api::{ApiError, BuildSpec, Management, MaskingSpec, ReplicaSpec};
use crate::core;
use crate::model::{VersionVector, VolumeName};

use super::{now_ms, Shared};

/// The management backend of a running controller.
#[derive(Clone)]
pub struct Backend(pub(crate) Arc<Shared>);

impl Backend {
    fn versions(&self, v: &VersionVector) -> Vec<VersionView> {
        let inner = self.0.lock();
        v.0.iter()
            .map(|(o, s)| VersionView {
                owner: *o,
                owner_name: if *o == inner.core.identity().wwpn {
                    Some(inner.core.identity().name.clone())
                } else {
                    inner
                        .core
                        .peer(*o)
                        .filter(|p| !p.name.is_empty())
                        .map(|p| p.name.clone())
                },
                generation: s.generation,
                version: s.version,
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl Management for Backend {
    async fn volumes(&self) -> Vec<VolumeView> {
        let inner = self.0.lock();
        inner
            .core
            .volumes()
            .into_iter()
            .filter_map(VolumeView::from_record)
            .collect()
    }

    async fn volume(&self, name: &VolumeName) -> Option<VolumeView> {
        let inner = self.0.lock();
        inner.core.volume(name).and_then(VolumeView::from_record)
    }

    async fn build(&self, req: BuildSpec) -> Result<VolumeView, ApiError> {
        let rec = self.0.build(req).await?;
        VolumeView::from_record(&rec).ok_or_else(|| ApiError::Internal("volume vanished".into()))
    }

    async fn delete(&self, name: &VolumeName, keep_in: Option<VolumeName>) -> Result<(), ApiError> {
        Ok(self.0.delete(name, keep_in.as_ref()).await?)
    }

    async fn add_replica(
        &self,
        name: &VolumeName,
        spec: ReplicaSpec,
    ) -> Result<ReplicaState, ApiError> {
        Ok(crate::io::replica::add(&self.0, name, spec).await?)
    }

    async fn replica(&self, name: &VolumeName) -> Result<ReplicaState, ApiError> {
        crate::io::replica::state(&self.0, name).ok_or_else(|| ApiError::NotFound(name.clone()))
    }

    async fn volume_io(&self, name: &VolumeName) -> Result<VolumeIoView, ApiError> {
        let replica = crate::io::replica::state(&self.0, name)
            .ok_or_else(|| ApiError::NotFound(name.clone()))?;
        Ok(VolumeIoView {
            lun: self.0.io.lun_of(name).and_then(|l| l.index()),
            counters: self.0.io.counters(name).unwrap_or_default(),
            replica: Some(replica),
        })
    }

    async fn set_masking(
        &self,
        name: &VolumeName,
        spec: MaskingSpec,
    ) -> Result<VolumeView, ApiError> {
        let rec = self.0.set_masking(name, spec.hosts)?;
        VolumeView::from_record(&rec).ok_or_else(|| ApiError::NotFound(name.clone()))
    }

    async fn real_volumes(&self) -> RealVolumesView {
        let inner = self.0.lock();
        let used = inner.extents.used();
        let volumes = inner
            .real
            .iter()
            .map(|v| RealVolumeView {
                array: v.array,
                array_fc_id: v.array_id,
                lun: crate::api::views::lun_number(v.lun),
                media: v.media,
                capacity: v.bytes(),
                block_size: v.block_size,
                vendor: v.vendor.clone(),
                product: v.product.clone(),
                present: true,
                used_by: used
                    .iter()
                    .filter(|u| u.array == v.array && u.lun == v.lun)
                    .map(|u| UseView {
                        volume: u.volume.clone(),
                        start: u.extent.start,
                        blocks: u.extent.blocks,
                    })
                    .collect(),
            })
            .collect();
        let free = inner
            .extents
            .free()
            .into_iter()
            .map(|f| FreeView {
                array: f.array,
                array_fc_id: f.array_id,
                media: f.media,
                free_bytes: f.bytes,
                extents: f.extents.len() as u64,
            })
            .collect();
        RealVolumesView {
            controller: self.0.config.name.clone(),
            site: self.0.config.site.clone(),
            volumes,
            free,
        }
    }

    async fn peers(&self) -> Vec<PeerView> {
        let (me, peers, mine) = {
            let inner = self.0.lock();
            let me = inner.core.identity().clone();
            let peers: Vec<core::PeerInfo> = inner.core.peers().cloned().collect();
            (me, peers, inner.core.versions().clone())
        };
        let now = now_ms();
        let mut out = vec![PeerView {
            name: me.name.clone(),
            wwpn: me.wwpn,
            fc_id: me.fc_id,
            site: me.site.clone(),
            state: PeerState::Myself,
            api: me.api.clone(),
            last_heard_ms: None,
            versions: self.versions(&mine),
        }];
        for p in peers {
            out.push(PeerView {
                name: p.name.clone(),
                wwpn: p.wwpn,
                fc_id: p.fc_id.unwrap_or(FcId::UNIDENTIFIED),
                site: p.site.clone(),
                state: if p.state == core::PeerState::Up {
                    PeerState::Up
                } else {
                    PeerState::Down
                },
                api: p.api.clone(),
                last_heard_ms: p.last_heard.map(|t| now.saturating_sub(t)),
                versions: self.versions(&p.versions),
            });
        }
        out
    }

    async fn counters(&self) -> CountersView {
        let inner = self.0.lock();
        let mut counters: BTreeMap<String, u64> = inner
            .core
            .counters()
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        let c = self.0.node.counters();
        counters.insert("node.service_requests".into(), c.service_requests);
        counters.insert("volumes".into(), inner.core.volumes().len() as u64);
        counters.insert("ready".into(), u64::from(inner.core.is_ready()));
        counters.insert(
            "generation".into(),
            u64::from(inner.core.durable().generation),
        );
        counters.insert(
            "peers.up".into(),
            inner
                .core
                .peers()
                .filter(|p| p.state == core::PeerState::Up)
                .count() as u64,
        );
        counters.insert(
            "extents.reserved_bytes".into(),
            inner.extents.reserved_bytes(),
        );
        CountersView { counters }
    }
}
