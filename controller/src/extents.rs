//! What of this SAN's real volumes is free, reserved for a builder, and used by which volume
//! (PATENT.md figure 3 (a) and (b); the reservations of figure 7 as CONTROLLER.md sketches
//! them). Sans-IO: time comes in as `now_ms`, nothing here sleeps or sends.
//!
//! Each LUN is a line of blocks (a tape: one unit, taken whole). What is reserved or used is
//! written down as pieces of those lines; what is free is what lies between them, so a block
//! is never both free and taken, and freed pieces merge with their free neighbours by
//! construction.
//!
//! | event | LUN present | LUN gone |
//! |---|---|---|
//! | [`set_volumes`](Extents::set_volumes) lists it | geometry updated; grown: free space at its end; shrunk: pieces past the end count as gone | back: its used pieces are in use again ([`Vanished::returned`]) |
//! | [`set_volumes`](Extents::set_volumes) does not list it | its free space goes; reservations on it dropped ([`Vanished::dropped`]); volumes on it [`Vanished::degraded`], never deleted | — |
//! | [`reserve`](Extents::reserve) | free whole allocation units of the media type; fewest pieces | not offered |
//! | [`expire`](Extents::expire) / [`release`](Extents::release) | reserved → free | — |
//! | [`commit`](Extents::commit) | reserved → used by the volume | — |
//! | [`mark_used`](Extents::mark_used) | free or reserved → used (the mapping wins: an overlapped reservation is dropped); used by another volume: refused | written down, in use when it appears |
//! | [`free_volume`](Extents::free_volume) | used → free | forgotten |
//!
//! Reserving ([`Extents::reserve`]): the request is rounded up to whole allocation units
//! (1 MiB unless [`Extents::with_unit`] says otherwise; on a LUN, at least one block). If one
//! free run of the media type holds it all, the smallest such run gives it from its start (best
//! fit, one piece); otherwise the largest run is taken whole and the rest is looked for the
//! same way. Ties go to the lower (array, LUN, block). Fewer bytes than asked may come back:
//! the builder combines SANs. Units are aligned to the unit size on their LUN, so a LUN's tail
//! shorter than a unit, or an unaligned gap the mapping left, shows as free but is not handed
//! out. A tape's capacity is not known, so a tape reservation takes one whole free tape LUN
//! whatever the bytes asked; its extent is `start 0, blocks 0, block_size 0`.

use std::collections::{BTreeMap, BTreeSet};

use fc_frames::{FcId, Wwn};

use crate::model::{MediaType, RealExtent, VolumeName};
use crate::real::RealVolume;

/// The allocation unit unless configured: 1 MiB.
pub const DEFAULT_UNIT_BYTES: u64 = 1 << 20;

/// A builder's reservation: the builder's WWPN and its own number for the request, so a
/// retried RESERVE finds the same reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReservationId {
    /// The builder (a controller's N_Port_Name).
    pub builder: Wwn,
    /// The builder's number for it.
    pub id: u64,
}

/// What a new list of real volumes did ([`Extents::set_volumes`]). Names are sorted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Vanished {
    /// Volumes that were whole and now have an extent on a LUN that is gone (or past a
    /// shrunk LUN's end): to be marked degraded, never deleted.
    pub degraded: Vec<VolumeName>,
    /// Volumes that were not whole and now are: every extent is on a present LUN again.
    pub returned: Vec<VolumeName>,
    /// Reservations that held space on a LUN that is gone or shrank, dropped whole.
    pub dropped: Vec<ReservationId>,
}

/// One row of figure 3 (a): a volume's extent on a real volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedRow {
    /// The volume.
    pub volume: VolumeName,
    /// The array's N_Port_Name.
    pub array: Wwn,
    /// The array's N_Port_ID.
    pub array_id: FcId,
    /// The LUN ([`lun_code`](crate::real::lun_code)).
    pub lun: u64,
    /// The LUN's capacity in bytes (0 for a tape, or a LUN never discovered).
    pub lun_bytes: u64,
    /// The extent.
    pub extent: RealExtent,
    /// Whether the extent is on a present LUN, inside its capacity.
    pub present: bool,
}

/// One row of figure 3 (b): the free space of one media type on one array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeRow {
    /// The array's N_Port_Name.
    pub array: Wwn,
    /// The array's N_Port_ID.
    pub array_id: FcId,
    /// The media type.
    pub media: MediaType,
    /// Free bytes (0 for tapes: count the extents).
    pub bytes: u64,
    /// The free extents, by LUN and block.
    pub extents: Vec<RealExtent>,
}

/// The free space of one media type on the whole SAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FreeTotal {
    /// Free bytes (0 for tapes).
    pub bytes: u64,
    /// Free extents (for tapes: free tape LUNs).
    pub extents: usize,
}

/// Why [`Extents::mark_used`] refused a volume's extents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MarkError {
    /// Another volume already uses blocks of this extent.
    #[error("{extent:?} overlaps blocks used by {other}")]
    Overlap {
        /// The extent asked for.
        extent: RealExtent,
        /// The volume that uses some of its blocks.
        other: VolumeName,
    },
}

/// The free, reserved and used space of this SAN's real volumes.
#[derive(Debug, Clone)]
pub struct Extents {
    unit_bytes: u64,
    luns: BTreeMap<LunKey, LunState>,
    reservations: BTreeMap<ReservationId, Reservation>,
}

/// A LUN by array and LUN (the N_Port_ID may change between logins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct LunKey {
    array: Wwn,
    lun: u64,
}

/// Who holds a piece.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Holder {
    Reserved(ReservationId),
    Used(VolumeName),
}

/// A taken run of units.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Piece {
    units: u64,
    holder: Holder,
}

#[derive(Debug, Clone)]
struct LunState {
    array_id: FcId,
    /// 0 for a tape.
    block_size: u32,
    /// `None` for a LUN known only from the mapping, never discovered.
    media: Option<MediaType>,
    /// Length of the line: the blocks of a disk, 1 for a tape, 0 when never discovered.
    units: u64,
    present: bool,
    /// Taken pieces by first unit; they never overlap, and neighbours with one holder are
    /// merged.
    taken: BTreeMap<u64, Piece>,
}

#[derive(Debug, Clone)]
struct Reservation {
    extents: Vec<RealExtent>,
    expires_ms: u64,
}

/// A free aligned run offered to a reservation.
#[derive(Debug, Clone, Copy)]
struct Run {
    key: LunKey,
    start: u64,
    blocks: u64,
    block_size: u32,
    /// Blocks in one allocation unit on that LUN.
    granule: u64,
}

impl Run {
    fn bytes(&self) -> u64 {
        self.blocks.saturating_mul(u64::from(self.block_size))
    }

    /// Blocks of this run's LUN that hold `bytes`, in whole units.
    fn blocks_for(&self, bytes: u64) -> u64 {
        let unit = self
            .granule
            .saturating_mul(u64::from(self.block_size))
            .max(1);
        bytes.div_ceil(unit).saturating_mul(self.granule)
    }
}

impl LunState {
    fn is_tape(&self) -> bool {
        self.media == Some(MediaType::Tape) || self.block_size == 0
    }

    /// The extent of `units` units from `start`.
    fn extent(&self, key: LunKey, start: u64, units: u64) -> RealExtent {
        let (start, blocks) = if self.is_tape() {
            (0, 0)
        } else {
            (start, units)
        };
        RealExtent {
            array: key.array,
            array_id: self.array_id,
            lun: key.lun,
            start,
            blocks,
            block_size: self.block_size,
        }
    }

    /// The units `[start, end)` an extent on this LUN covers.
    fn span(&self, e: &RealExtent) -> (u64, u64) {
        if self.is_tape() {
            (0, 1)
        } else {
            (e.start, e.start.saturating_add(e.blocks))
        }
    }

    fn bytes(&self) -> u64 {
        if self.is_tape() {
            0
        } else {
            self.units.saturating_mul(u64::from(self.block_size))
        }
    }

    /// The free runs `[start, end)` within the line.
    fn gaps(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut at = 0;
        for (&start, piece) in &self.taken {
            if start > at {
                out.push((at, start.min(self.units)));
            }
            at = at.max(start.saturating_add(piece.units));
            if at >= self.units {
                break;
            }
        }
        if at < self.units {
            out.push((at, self.units));
        }
        out.retain(|(s, e)| s < e);
        out
    }

    /// Pieces overlapping `[start, end)`.
    fn overlapping(&self, start: u64, end: u64) -> impl Iterator<Item = (u64, &Piece)> {
        // A piece that begins before `start` may reach into it: the last one before it.
        let before = self.taken.range(..start).next_back().map(|(&s, p)| (s, p));
        before
            .into_iter()
            .chain(self.taken.range(start..end).map(|(&s, p)| (s, p)))
            .filter(move |(s, p)| *s < end && s.saturating_add(p.units) > start)
    }

    /// Writes down a piece over units that no piece holds.
    fn insert(&mut self, start: u64, units: u64, holder: Holder) {
        if units > 0 {
            self.taken.insert(start, Piece { units, holder });
            self.merge();
        }
    }

    /// Joins neighbouring pieces of one holder.
    fn merge(&mut self) {
        let mut merged: BTreeMap<u64, Piece> = BTreeMap::new();
        let mut last: Option<(u64, Piece)> = None;
        for (start, piece) in std::mem::take(&mut self.taken) {
            last = match last {
                Some((s, mut p)) if s + p.units == start && p.holder == piece.holder => {
                    p.units += piece.units;
                    Some((s, p))
                }
                Some((s, p)) => {
                    merged.insert(s, p);
                    Some((start, piece))
                }
                None => Some((start, piece)),
            };
        }
        if let Some((s, p)) = last {
            merged.insert(s, p);
        }
        self.taken = merged;
    }

    /// Names of the volumes with a piece off the present line (the LUN is gone, or the piece
    /// lies past its end).
    fn broken(&self) -> impl Iterator<Item = &VolumeName> {
        self.taken.iter().filter_map(|(&s, p)| match &p.holder {
            Holder::Used(n) if !(self.present && s.saturating_add(p.units) <= self.units) => {
                Some(n)
            }
            _ => None,
        })
    }
}

impl Default for Extents {
    fn default() -> Self {
        Extents::new()
    }
}

impl Extents {
    /// No real volumes yet; 1 MiB allocation units.
    pub fn new() -> Extents {
        Extents::with_unit(DEFAULT_UNIT_BYTES)
    }

    /// No real volumes yet; allocation units of `unit_bytes` (on a LUN, rounded up to whole
    /// blocks, at least one).
    pub fn with_unit(unit_bytes: u64) -> Extents {
        Extents {
            unit_bytes: unit_bytes.max(1),
            luns: BTreeMap::new(),
            reservations: BTreeMap::new(),
        }
    }

    /// The allocation unit in bytes.
    pub fn unit_bytes(&self) -> u64 {
        self.unit_bytes
    }

    /// Takes a new scan's list of real volumes (see the table in the module doc).
    pub fn set_volumes(&mut self, vols: &[RealVolume]) -> Vanished {
        let before = self.broken_volumes();
        let listed: BTreeMap<LunKey, &RealVolume> = vols
            .iter()
            .map(|v| {
                (
                    LunKey {
                        array: v.array,
                        lun: v.lun,
                    },
                    v,
                )
            })
            .collect();
        let mut doomed = BTreeSet::new();
        for (key, v) in &listed {
            let lun = self.luns.entry(*key).or_insert_with(|| LunState {
                array_id: v.array_id,
                block_size: v.block_size,
                media: Some(v.media),
                units: 0,
                present: false,
                taken: BTreeMap::new(),
            });
            lun.array_id = v.array_id;
            lun.block_size = v.block_size;
            lun.media = Some(v.media);
            lun.units = if v.media == MediaType::Tape {
                1
            } else {
                v.blocks
            };
            lun.present = true;
            // Shrunk: a reservation past the end cannot be had.
            for (&s, p) in &lun.taken {
                if let Holder::Reserved(id) = p.holder {
                    if s.saturating_add(p.units) > lun.units {
                        doomed.insert(id);
                    }
                }
            }
        }
        for (key, lun) in &mut self.luns {
            if lun.present && !listed.contains_key(key) {
                tracing::info!(array = %key.array, lun = key.lun, "real volume gone");
                lun.present = false;
                doomed.extend(lun.taken.values().filter_map(|p| match p.holder {
                    Holder::Reserved(id) => Some(id),
                    Holder::Used(_) => None,
                }));
            }
        }
        for id in &doomed {
            self.release(*id);
        }
        // A LUN that is gone and that nothing uses is forgotten.
        self.luns.retain(|_, l| l.present || !l.taken.is_empty());
        let after = self.broken_volumes();
        Vanished {
            degraded: after.difference(&before).cloned().collect(),
            returned: before.difference(&after).cloned().collect(),
            dropped: doomed.into_iter().collect(),
        }
    }

    /// Volumes with a piece off the present lines.
    fn broken_volumes(&self) -> BTreeSet<VolumeName> {
        self.luns
            .values()
            .flat_map(LunState::broken)
            .cloned()
            .collect()
    }

    /// Reserves for `id` up to `bytes` of free `media` until `now_ms + ttl_ms` (see the module
    /// doc for which extents); fewer, or none, when there is not that much. The same `id`
    /// again, while its reservation stands, returns the same extents and renews the ttl.
    pub fn reserve(
        &mut self,
        now_ms: u64,
        id: ReservationId,
        media: MediaType,
        bytes: u64,
        ttl_ms: u64,
    ) -> Vec<RealExtent> {
        self.reserve_avoiding(now_ms, id, media, bytes, ttl_ms, &BTreeSet::new())
    }

    /// [`reserve`](Self::reserve), taking nothing on the arrays of `avoid` (a replica keeps
    /// off the arrays that hold the volume's other copies).
    pub fn reserve_avoiding(
        &mut self,
        now_ms: u64,
        id: ReservationId,
        media: MediaType,
        bytes: u64,
        ttl_ms: u64,
        avoid: &BTreeSet<Wwn>,
    ) -> Vec<RealExtent> {
        let expires_ms = now_ms.saturating_add(ttl_ms);
        if let Some(r) = self.reservations.get_mut(&id) {
            r.expires_ms = expires_ms;
            return r.extents.clone();
        }
        if bytes == 0 {
            return Vec::new();
        }
        let mut runs = self.runs(media);
        runs.retain(|r| !avoid.contains(&r.key.array));
        let mut taken: Vec<(Run, u64)> = Vec::new();
        if media == MediaType::Tape {
            taken.extend(runs.first().map(|r| (*r, r.blocks)));
        } else {
            let mut left = bytes;
            while left > 0 && !runs.is_empty() {
                let fit = runs
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.blocks >= r.blocks_for(left))
                    .min_by_key(|(_, r)| (r.bytes(), r.key, r.start))
                    .map(|(i, _)| i);
                if let Some(i) = fit {
                    let r = runs.swap_remove(i);
                    taken.push((r, r.blocks_for(left)));
                    break;
                }
                let Some(i) = runs
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, r)| {
                        (
                            r.bytes(),
                            std::cmp::Reverse(r.key),
                            std::cmp::Reverse(r.start),
                        )
                    })
                    .map(|(i, _)| i)
                else {
                    break;
                };
                let r = runs.swap_remove(i);
                left = left.saturating_sub(r.bytes());
                taken.push((r, r.blocks));
            }
        }
        let mut extents = Vec::with_capacity(taken.len());
        for (run, blocks) in taken {
            if let Some(lun) = self.luns.get_mut(&run.key) {
                lun.insert(run.start, blocks, Holder::Reserved(id));
                extents.push(lun.extent(run.key, run.start, blocks));
            }
        }
        extents.sort();
        if !extents.is_empty() {
            self.reservations.insert(
                id,
                Reservation {
                    extents: extents.clone(),
                    expires_ms,
                },
            );
        }
        extents
    }

    /// The free aligned runs of `media` on present LUNs, by LUN and block.
    fn runs(&self, media: MediaType) -> Vec<Run> {
        let mut out = Vec::new();
        for (&key, lun) in &self.luns {
            if !lun.present || lun.media != Some(media) {
                continue;
            }
            let granule = if lun.is_tape() {
                1
            } else {
                self.unit_bytes.div_ceil(u64::from(lun.block_size)).max(1)
            };
            for (s, e) in lun.gaps() {
                let start = s.div_ceil(granule).saturating_mul(granule);
                let end = e / granule * granule;
                if start < end {
                    out.push(Run {
                        key,
                        start,
                        blocks: end - start,
                        block_size: lun.block_size,
                        granule,
                    });
                }
            }
        }
        out
    }

    /// Gives back what `id` holds; false when it holds nothing (released, expired, committed,
    /// dropped, or never made).
    pub fn release(&mut self, id: ReservationId) -> bool {
        let Some(r) = self.reservations.remove(&id) else {
            return false;
        };
        self.drop_pieces(&r.extents, &Holder::Reserved(id));
        true
    }

    fn drop_pieces(&mut self, extents: &[RealExtent], holder: &Holder) {
        let keys: BTreeSet<LunKey> = extents
            .iter()
            .map(|e| LunKey {
                array: e.array,
                lun: e.lun,
            })
            .collect();
        for key in keys {
            if let Some(lun) = self.luns.get_mut(&key) {
                lun.taken.retain(|_, p| p.holder != *holder);
            }
        }
    }

    /// Makes what `id` holds the extents of volume `name`; false when it holds nothing.
    pub fn commit(&mut self, id: ReservationId, name: &VolumeName) -> bool {
        let Some(r) = self.reservations.remove(&id) else {
            return false;
        };
        let keys: BTreeSet<LunKey> = r
            .extents
            .iter()
            .map(|e| LunKey {
                array: e.array,
                lun: e.lun,
            })
            .collect();
        for key in keys {
            if let Some(lun) = self.luns.get_mut(&key) {
                for p in lun.taken.values_mut() {
                    if p.holder == Holder::Reserved(id) {
                        p.holder = Holder::Used(name.clone());
                    }
                }
                lun.merge();
            }
        }
        true
    }

    /// Frees the reservations whose ttl has passed at `now_ms`; their ids.
    pub fn expire(&mut self, now_ms: u64) -> Vec<ReservationId> {
        let due: Vec<ReservationId> = self
            .reservations
            .iter()
            .filter(|(_, r)| r.expires_ms <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in &due {
            self.release(*id);
        }
        due
    }

    /// When the next reservation expires (ms): call [`expire`](Self::expire) then.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        self.reservations.values().map(|r| r.expires_ms).min()
    }

    /// The extents `id` holds, while it stands.
    pub fn reservation(&self, id: ReservationId) -> Option<&[RealExtent]> {
        self.reservations.get(&id).map(|r| r.extents.as_slice())
    }

    /// Writes down that volume `name` uses `extents` (a restarting controller, from the
    /// mapping's rows on its own arrays). Extents on LUNs not discovered (yet) are kept, and in
    /// use when the LUN appears. The mapping wins over reservations: one that overlaps is
    /// dropped, and its id returned. All or nothing: refused when another volume uses any of
    /// the blocks.
    pub fn mark_used(
        &mut self,
        name: &VolumeName,
        extents: &[RealExtent],
    ) -> Result<Vec<ReservationId>, MarkError> {
        let mut doomed = BTreeSet::new();
        for e in extents {
            let key = LunKey {
                array: e.array,
                lun: e.lun,
            };
            let Some(lun) = self.luns.get(&key) else {
                continue;
            };
            let (s, end) = lun.span(e);
            for (_, p) in lun.overlapping(s, end) {
                match &p.holder {
                    Holder::Used(other) if other != name => {
                        return Err(MarkError::Overlap {
                            extent: *e,
                            other: other.clone(),
                        })
                    }
                    Holder::Used(_) => {}
                    Holder::Reserved(id) => {
                        doomed.insert(*id);
                    }
                }
            }
        }
        for id in &doomed {
            self.release(*id);
        }
        for e in extents {
            let key = LunKey {
                array: e.array,
                lun: e.lun,
            };
            let lun = self.luns.entry(key).or_insert_with(|| LunState {
                array_id: e.array_id,
                block_size: e.block_size,
                media: None,
                units: 0,
                present: false,
                taken: BTreeMap::new(),
            });
            let (s, end) = lun.span(e);
            // What this volume does not hold yet of [s, end): the others were refused above.
            let held: Vec<(u64, u64)> = lun
                .overlapping(s, end)
                .map(|(ps, p)| (ps.max(s), ps.saturating_add(p.units).min(end)))
                .collect();
            let mut at = s;
            let mut fill = Vec::new();
            for (hs, he) in held {
                if hs > at {
                    fill.push((at, hs));
                }
                at = at.max(he);
            }
            if at < end {
                fill.push((at, end));
            }
            for (fs, fe) in fill {
                lun.insert(fs, fe - fs, Holder::Used(name.clone()));
            }
        }
        Ok(doomed.into_iter().collect())
    }

    /// A deleted volume's extents go back to free (merged with their free neighbours); the
    /// extents it had.
    pub fn free_volume(&mut self, name: &VolumeName) -> Vec<RealExtent> {
        let holder = Holder::Used(name.clone());
        let mut freed = Vec::new();
        for (&key, lun) in &mut self.luns {
            let mut mine = Vec::new();
            lun.taken.retain(|&s, p| {
                let is = p.holder == holder;
                if is {
                    mine.push((s, p.units));
                }
                !is
            });
            freed.extend(mine.into_iter().map(|(s, u)| lun.extent(key, s, u)));
        }
        self.luns.retain(|_, l| l.present || !l.taken.is_empty());
        freed
    }

    /// Figure 3 (a): every used extent, by volume, array, LUN and block.
    pub fn used(&self) -> Vec<UsedRow> {
        let mut rows = Vec::new();
        for (&key, lun) in &self.luns {
            for (&s, p) in &lun.taken {
                let Holder::Used(name) = &p.holder else {
                    continue;
                };
                rows.push(UsedRow {
                    volume: name.clone(),
                    array: key.array,
                    array_id: lun.array_id,
                    lun: key.lun,
                    lun_bytes: lun.bytes(),
                    extent: lun.extent(key, s, p.units),
                    present: lun.present && s.saturating_add(p.units) <= lun.units,
                });
            }
        }
        rows.sort_by(|a, b| (&a.volume, a.extent).cmp(&(&b.volume, b.extent)));
        rows
    }

    /// Figure 3 (b): the free space of each media type on each array, by array and type.
    pub fn free(&self) -> Vec<FreeRow> {
        let mut rows: BTreeMap<(Wwn, MediaType), FreeRow> = BTreeMap::new();
        for (&key, lun) in &self.luns {
            let Some(media) = lun.media.filter(|_| lun.present) else {
                continue;
            };
            let row = rows.entry((key.array, media)).or_insert_with(|| FreeRow {
                array: key.array,
                array_id: lun.array_id,
                media,
                bytes: 0,
                extents: Vec::new(),
            });
            for (s, e) in lun.gaps() {
                let extent = lun.extent(key, s, e - s);
                row.bytes = row.bytes.saturating_add(extent.bytes());
                row.extents.push(extent);
            }
        }
        rows.into_values().collect()
    }

    /// The free space of each media type on the whole SAN.
    pub fn free_by_media(&self) -> BTreeMap<MediaType, FreeTotal> {
        let mut out: BTreeMap<MediaType, FreeTotal> = BTreeMap::new();
        for row in self.free() {
            let t = out.entry(row.media).or_default();
            t.bytes = t.bytes.saturating_add(row.bytes);
            t.extents += row.extents.len();
        }
        out
    }

    /// Bytes held by reservations.
    pub fn reserved_bytes(&self) -> u64 {
        self.reservations
            .values()
            .flat_map(|r| &r.extents)
            .map(RealExtent::bytes)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    const A: Wwn = Wwn::from_u64(0x2200_0000_0000_000a);
    const B: Wwn = Wwn::from_u64(0x2200_0000_0000_000b);
    const BUILDER: Wwn = Wwn::from_u64(0x2000_0000_0000_00c1);
    const MIB: u64 = 1 << 20;

    fn vol(array: Wwn, lun: u64, media: MediaType, blocks: u64) -> RealVolume {
        let tape = media == MediaType::Tape;
        RealVolume {
            array,
            array_id: FcId::from_parts(1, array.to_u64() as u8, 0),
            lun,
            media,
            block_size: if tape { 0 } else { 512 },
            blocks: if tape { 0 } else { blocks },
            vendor: "FCSAN".into(),
            product: "TEST".into(),
        }
    }

    fn rid(id: u64) -> ReservationId {
        ReservationId {
            builder: BUILDER,
            id,
        }
    }

    fn name(s: &str) -> VolumeName {
        VolumeName::new(s).unwrap()
    }

    /// 1 MiB of 512-byte blocks.
    const U: u64 = 2048;

    fn free_bytes(x: &Extents, m: MediaType) -> u64 {
        x.free_by_media().get(&m).map_or(0, |t| t.bytes)
    }

    #[test]
    fn test_new_luns_are_free() {
        let mut x = Extents::new();
        let v = x.set_volumes(&[
            vol(A, 0, MediaType::Ssd, 10 * U),
            vol(A, 1, MediaType::SlowHdd, 20 * U),
            vol(B, 0, MediaType::SlowHdd, 5 * U),
        ]);
        assert_eq!(v, Vanished::default());
        assert_eq!(free_bytes(&x, MediaType::Ssd), 10 * MIB);
        assert_eq!(free_bytes(&x, MediaType::SlowHdd), 25 * MIB);
        let rows = x.free();
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[0].array, rows[0].media), (A, MediaType::Ssd));
        assert_eq!((rows[1].array, rows[1].media), (A, MediaType::SlowHdd));
        assert_eq!(rows[2].extents[0].blocks, 5 * U);
    }

    #[test]
    fn test_reserve_prefers_one_best_fit_piece() {
        let mut x = Extents::new();
        x.set_volumes(&[
            vol(A, 0, MediaType::SlowHdd, 100 * U),
            vol(A, 1, MediaType::SlowHdd, 10 * U),
            vol(B, 0, MediaType::SlowHdd, 50 * U),
        ]);
        // 8 MiB fits in the 10 MiB LUN: the smallest run that holds it all.
        let e = x.reserve(0, rid(1), MediaType::SlowHdd, 8 * MIB, 1000);
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].array, e[0].lun, e[0].start, e[0].blocks),
            (A, 1, 0, 8 * U)
        );
        // 40 MiB: the 50 MiB LUN of B, not the 100 MiB one.
        let e = x.reserve(0, rid(2), MediaType::SlowHdd, 40 * MIB, 1000);
        assert_eq!((e[0].array, e[0].lun, e[0].blocks), (B, 0, 40 * U));
        assert_eq!(x.reserved_bytes(), 48 * MIB);
    }

    #[test]
    fn test_reserve_largest_first_when_nothing_fits() {
        let mut x = Extents::new();
        x.set_volumes(&[
            vol(A, 0, MediaType::FastHdd, 3 * U),
            vol(A, 1, MediaType::FastHdd, 5 * U),
            vol(B, 0, MediaType::FastHdd, 4 * U),
        ]);
        let e = x.reserve(0, rid(1), MediaType::FastHdd, 8 * MIB, 1000);
        // 5 whole, then 3 from the best fit of the rest (the 3 MiB LUN).
        let pieces: Vec<(Wwn, u64, u64)> = e.iter().map(|e| (e.array, e.lun, e.blocks)).collect();
        assert_eq!(pieces, vec![(A, 0, 3 * U), (A, 1, 5 * U)]);
    }

    #[test]
    fn test_reserve_partial_when_short() {
        let mut x = Extents::new();
        x.set_volumes(&[vol(A, 0, MediaType::Ssd, 4 * U)]);
        let e = x.reserve(0, rid(1), MediaType::Ssd, 10 * MIB, 1000);
        assert_eq!(e.iter().map(RealExtent::bytes).sum::<u64>(), 4 * MIB);
        assert!(x.reserve(0, rid(2), MediaType::Ssd, MIB, 1000).is_empty());
        assert_eq!(x.reservation(rid(2)), None);
        assert!(x
            .reserve(0, rid(3), MediaType::SlowHdd, MIB, 1000)
            .is_empty());
    }

    #[test]
    fn test_reserve_rounds_up_to_units() {
        let mut x = Extents::new();
        x.set_volumes(&[vol(A, 0, MediaType::Ssd, 10 * U)]);
        let e = x.reserve(0, rid(1), MediaType::Ssd, MIB + 1, 1000);
        assert_eq!(e[0].blocks, 2 * U);
        // A unit smaller than a block is one block.
        let mut x = Extents::with_unit(100);
        x.set_volumes(&[vol(A, 0, MediaType::Ssd, 10)]);
        let e = x.reserve(0, rid(1), MediaType::Ssd, 513, 1000);
        assert_eq!(e[0].blocks, 2);
        // Units are aligned on the LUN: the tail shorter than a unit is not handed out.
        let mut x = Extents::new();
        x.set_volumes(&[vol(A, 0, MediaType::Ssd, 2 * U + 7)]);
        let e = x.reserve(0, rid(1), MediaType::Ssd, 10 * MIB, 1000);
        assert_eq!(e[0].blocks, 2 * U);
        assert_eq!(free_bytes(&x, MediaType::Ssd), 7 * 512);
    }

    #[test]
    fn test_reserve_same_id_is_idempotent_and_renews() {
        let mut x = Extents::new();
        x.set_volumes(&[vol(A, 0, MediaType::Ssd, 10 * U)]);
        let first = x.reserve(0, rid(1), MediaType::Ssd, 3 * MIB, 1000);
        let again = x.reserve(900, rid(1), MediaType::Ssd, 3 * MIB, 1000);
        assert_eq!(first, again);
        assert_eq!(x.reserved_bytes(), 3 * MIB);
        assert_eq!(x.poll_timeout(), Some(1900));
        assert!(x.expire(1500).is_empty());
        assert_eq!(x.expire(1900), vec![rid(1)]);
    }

    #[test]
    fn test_reserve_is_deterministic() {
        let vols = [
            vol(A, 0, MediaType::Ssd, 7 * U),
            vol(A, 1, MediaType::Ssd, 7 * U),
            vol(B, 0, MediaType::Ssd, 7 * U),
        ];
        let run = || {
            let mut x = Extents::new();
            x.set_volumes(&vols);
            (1..=4)
                .map(|i| x.reserve(0, rid(i), MediaType::Ssd, 5 * MIB, 10))
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        // Equal runs: the lower array and LUN first.
        assert_eq!((a[0][0].array, a[0][0].lun), (A, 0));
    }

    #[test]
    fn test_release_and_expire_free_space() {
        let mut x = Extents::new();
        x.set_volumes(&[vol(A, 0, MediaType::Ssd, 10 * U)]);
        x.reserve(0, rid(1), MediaType::Ssd, 4 * MIB, 100);
        x.reserve(50, rid(2), MediaType::Ssd, 4 * MIB, 100);
        assert_eq!(free_bytes(&x, MediaType::Ssd), 2 * MIB);
        assert_eq!(x.poll_timeout(), Some(100));
        assert!(x.release(rid(1)));
        assert!(!x.release(rid(1)));
        assert_eq!(free_bytes(&x, MediaType::Ssd), 6 * MIB);
        assert_eq!(x.expire(149), Vec::<ReservationId>::new());
        assert_eq!(x.expire(150), vec![rid(2)]);
        assert_eq!(x.poll_timeout(), None);
        assert_eq!(x.free()[0].extents.len(), 1, "freed space merges");
        assert_eq!(free_bytes(&x, MediaType::Ssd), 10 * MIB);
        assert!(!x.commit(rid(2), &name("late")));
    }

    #[test]
    fn test_commit_makes_used_rows() {
        let mut x = Extents::new();
        x.set_volumes(&[vol(A, 0, MediaType::Ssd, 10 * U)]);
        let e = x.reserve(0, rid(1), MediaType::Ssd, 4 * MIB, 100);
        assert!(x.commit(rid(1), &name("vol1")));
        assert!(!x.commit(rid(1), &name("vol1")));
        assert_eq!(x.reserved_bytes(), 0);
        assert!(x.expire(1000).is_empty(), "committed space does not expire");
        let rows = x.used();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].volume, name("vol1"));
        assert_eq!(rows[0].extent, e[0]);
        assert_eq!(rows[0].lun_bytes, 10 * MIB);
        assert!(rows[0].present);
        assert_eq!(free_bytes(&x, MediaType::Ssd), 6 * MIB);
    }

    #[test]
    fn test_free_volume_merges_with_neighbours() {
        let mut x = Extents::new();
        x.set_volumes(&[vol(A, 0, MediaType::Ssd, 10 * U)]);
        for (i, n) in [(1, "a"), (2, "b"), (3, "c")] {
            x.reserve(0, rid(i), MediaType::Ssd, 3 * MIB, 100);
            x.commit(rid(i), &name(n));
        }
        x.free_volume(&name("a"));
        x.free_volume(&name("c"));
        assert_eq!(x.free()[0].extents.len(), 2);
        let freed = x.free_volume(&name("b"));
        assert_eq!(freed.len(), 1);
        assert_eq!(freed[0].start, 3 * U);
        assert_eq!(x.free()[0].extents.len(), 1);
        assert_eq!(x.free()[0].bytes, 10 * MIB);
        assert!(x.used().is_empty());
    }

    #[test]
    fn test_vanished_lun_degrades_and_returns() {
        let mut x = Extents::new();
        let a0 = vol(A, 0, MediaType::Ssd, 10 * U);
        let b0 = vol(B, 0, MediaType::Ssd, 10 * U);
        x.set_volumes(&[a0.clone(), b0.clone()]);
        x.reserve(0, rid(1), MediaType::Ssd, 10 * MIB, 100);
        x.commit(rid(1), &name("on-a"));
        x.reserve(0, rid(2), MediaType::Ssd, 4 * MIB, 100);
        assert_eq!(x.reservation(rid(2)).unwrap()[0].array, B);
        // Leave 2 MiB of A free, and reserve them.
        x.free_volume(&name("on-a"));
        x.mark_used(
            &name("on-a"),
            &[RealExtent {
                start: 0,
                blocks: 8 * U,
                ..x.free()[0].extents[0]
            }],
        )
        .unwrap();
        x.reserve(0, rid(3), MediaType::Ssd, 2 * MIB, 100);
        assert_eq!(x.reservation(rid(3)).unwrap()[0].array, A);

        let v = x.set_volumes(std::slice::from_ref(&b0));
        assert_eq!(v.degraded, vec![name("on-a")]);
        assert_eq!(v.dropped, vec![rid(3)]);
        assert!(v.returned.is_empty());
        assert_eq!(
            free_bytes(&x, MediaType::Ssd),
            6 * MIB,
            "A's free space is gone"
        );
        assert!(x.reservation(rid(2)).is_some(), "B's reservation stands");
        let rows = x.used();
        assert_eq!(rows.len(), 1);
        assert!(!rows[0].present, "the volume stays mapped");

        // Listing it gone again says nothing new.
        assert_eq!(
            x.set_volumes(std::slice::from_ref(&b0)),
            Vanished::default()
        );

        let v = x.set_volumes(&[a0, b0]);
        assert_eq!(v.returned, vec![name("on-a")]);
        assert!(v.degraded.is_empty());
        assert!(x.used()[0].present);
        assert_eq!(free_bytes(&x, MediaType::Ssd), 8 * MIB);
    }

    #[test]
    fn test_grown_lun_adds_free_space_at_its_end() {
        let mut x = Extents::new();
        x.set_volumes(&[vol(A, 0, MediaType::SlowHdd, 4 * U)]);
        x.reserve(0, rid(1), MediaType::SlowHdd, 4 * MIB, 100);
        x.commit(rid(1), &name("v"));
        assert_eq!(free_bytes(&x, MediaType::SlowHdd), 0);
        let v = x.set_volumes(&[vol(A, 0, MediaType::SlowHdd, 10 * U)]);
        assert_eq!(v, Vanished::default());
        let free = &x.free()[0].extents;
        assert_eq!((free[0].start, free[0].blocks), (4 * U, 6 * U));
        assert_eq!(x.used()[0].lun_bytes, 10 * MIB);
    }

    #[test]
    fn test_shrunk_lun_degrades_what_lies_past_its_end() {
        let mut x = Extents::new();
        x.set_volumes(&[vol(A, 0, MediaType::SlowHdd, 10 * U)]);
        x.reserve(0, rid(1), MediaType::SlowHdd, 4 * MIB, 100);
        x.commit(rid(1), &name("low"));
        x.reserve(0, rid(2), MediaType::SlowHdd, 4 * MIB, 100);
        x.commit(rid(2), &name("high"));
        x.reserve(0, rid(3), MediaType::SlowHdd, 2 * MIB, 100);
        let v = x.set_volumes(&[vol(A, 0, MediaType::SlowHdd, 6 * U)]);
        assert_eq!(v.degraded, vec![name("high")]);
        assert_eq!(v.dropped, vec![rid(3)]);
        assert_eq!(free_bytes(&x, MediaType::SlowHdd), 0);
        let v = x.set_volumes(&[vol(A, 0, MediaType::SlowHdd, 10 * U)]);
        assert_eq!(v.returned, vec![name("high")]);
    }

    #[test]
    fn test_mark_used_rebuilds_from_the_mapping() {
        let mut x = Extents::new();
        let a0 = vol(A, 0, MediaType::Ssd, 10 * U);
        let e = RealExtent {
            array: A,
            array_id: a0.array_id,
            lun: 0,
            start: 2 * U,
            blocks: 3 * U,
            block_size: 512,
        };
        // Before the first scan: kept, not yet present.
        assert_eq!(x.mark_used(&name("v"), &[e]), Ok(vec![]));
        assert!(!x.used()[0].present);
        // Marking it again changes nothing.
        assert_eq!(x.mark_used(&name("v"), &[e]), Ok(vec![]));
        assert_eq!(x.used().len(), 1);
        let v = x.set_volumes(&[a0]);
        assert_eq!(v.returned, vec![name("v")]);
        assert_eq!(free_bytes(&x, MediaType::Ssd), 7 * MIB);
        // Another volume over it is refused, whole.
        let other = RealExtent {
            start: 0,
            blocks: 3 * U,
            ..e
        };
        let clear = RealExtent {
            start: 8 * U,
            ..other
        };
        assert_eq!(
            x.mark_used(&name("w"), &[clear, other]),
            Err(MarkError::Overlap {
                extent: other,
                other: name("v")
            })
        );
        assert_eq!(x.used().len(), 1);
        // The mapping wins over a reservation.
        let r = x.reserve(0, rid(1), MediaType::Ssd, 2 * MIB, 100);
        assert_eq!(r[0].start, 0);
        assert_eq!(x.mark_used(&name("w"), &[clear]), Ok(vec![]));
        assert_eq!(
            x.mark_used(
                &name("x"),
                &[RealExtent {
                    start: U,
                    blocks: U,
                    ..e
                }]
            ),
            Ok(vec![rid(1)])
        );
        assert_eq!(x.reservation(rid(1)), None);
    }

    #[test]
    fn test_tape_is_taken_whole() {
        let mut x = Extents::new();
        x.set_volumes(&[
            vol(A, 1, MediaType::Tape, 0),
            vol(B, 1, MediaType::Tape, 0),
            vol(A, 0, MediaType::Ssd, U),
        ]);
        assert_eq!(x.free_by_media()[&MediaType::Tape].extents, 2);
        let e = x.reserve(0, rid(1), MediaType::Tape, 100 * MIB, 100);
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].array, e[0].lun, e[0].blocks), (A, 1, 0));
        assert_eq!(x.free_by_media()[&MediaType::Tape].extents, 1);
        assert!(x.commit(rid(1), &name("archive")));
        let e2 = x.reserve(0, rid(2), MediaType::Tape, 1, 100);
        assert_eq!(e2[0].array, B);
        assert!(x.reserve(0, rid(3), MediaType::Tape, 1, 100).is_empty());
        let v = x.set_volumes(&[vol(A, 0, MediaType::Ssd, U)]);
        assert_eq!(v.degraded, vec![name("archive")]);
        assert_eq!(v.dropped, vec![rid(2)]);
        x.free_volume(&name("archive"));
        assert!(x.used().is_empty());
    }

    // ---- property: no block twice, and the books balance ----

    #[derive(Debug, Clone)]
    enum Op {
        Reserve {
            id: u64,
            media: MediaType,
            mib: u64,
            ttl: u64,
        },
        Release(u64),
        Commit(u64, u8),
        Expire(u64),
        Free(u8),
        SetVolumes {
            present: u8,
            grow: u8,
        },
        Mark {
            vol: u8,
            lun: u8,
            start: u64,
            blocks: u64,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        let media = prop::sample::select(vec![MediaType::Ssd, MediaType::SlowHdd, MediaType::Tape]);
        prop_oneof![
            4 => (0..6u64, media, 0..12u64, 0..50u64)
                .prop_map(|(id, media, mib, ttl)| Op::Reserve { id, media, mib, ttl }),
            1 => (0..6u64).prop_map(Op::Release),
            2 => (0..6u64, 0..3u8).prop_map(|(i, n)| Op::Commit(i, n)),
            1 => (0..30u64).prop_map(Op::Expire),
            1 => (0..3u8).prop_map(Op::Free),
            1 => (any::<u8>(), 0..4u8).prop_map(|(present, grow)| Op::SetVolumes { present, grow }),
            1 => (0..3u8, 0..4u8, 0..12u64, 1..5u64)
                .prop_map(|(vol, lun, start, blocks)| Op::Mark { vol, lun, start, blocks }),
        ]
    }

    /// Four disks and two tapes; `present` says which, `grow` adds MiB to the disks.
    fn san(present: u8, grow: u8) -> Vec<RealVolume> {
        let g = u64::from(grow) * U;
        [
            vol(A, 0, MediaType::Ssd, 4 * U + g),
            vol(A, 1, MediaType::SlowHdd, 6 * U + g + 3),
            vol(B, 0, MediaType::Ssd, 3 * U + g),
            vol(B, 1, MediaType::SlowHdd, 5 * U + g),
            vol(A, 2, MediaType::Tape, 0),
            vol(B, 2, MediaType::Tape, 0),
        ]
        .into_iter()
        .enumerate()
        .filter(|(i, _)| present & (1 << i) != 0)
        .map(|(_, v)| v)
        .collect()
    }

    /// Units `[start, end)` of an extent: a tape's is its one unit.
    fn span(e: &RealExtent) -> (u64, u64) {
        if e.block_size == 0 {
            (0, 1)
        } else {
            (e.start, e.start + e.blocks)
        }
    }

    /// Units `[start, end)` of a LUN and what holds them: "free", "reserved" or "used".
    type Seen = (u64, u64, &'static str);

    fn check_books(x: &Extents, present: &[RealVolume]) -> Result<(), TestCaseError> {
        // Every extent known: free, reserved, used on a present LUN.
        let mut all: BTreeMap<(Wwn, u64), Vec<Seen>> = BTreeMap::new();
        for row in x.free() {
            for e in &row.extents {
                let (s, t) = span(e);
                all.entry((e.array, e.lun))
                    .or_default()
                    .push((s, t, "free"));
            }
        }
        for r in x.reservations.values() {
            for e in &r.extents {
                let (s, t) = span(e);
                all.entry((e.array, e.lun))
                    .or_default()
                    .push((s, t, "reserved"));
            }
        }
        for row in x.used() {
            let (s, t) = span(&row.extent);
            all.entry((row.array, row.lun))
                .or_default()
                .push((s, t, "used"));
        }
        for v in present {
            let cap = if v.media == MediaType::Tape {
                1
            } else {
                v.blocks
            };
            let mut pieces = all.remove(&(v.array, v.lun)).unwrap_or_default();
            pieces.sort();
            // No unit twice.
            for w in pieces.windows(2) {
                prop_assert!(w[0].1 <= w[1].0, "overlap on {:?}: {:?}", v, w);
            }
            // Inside the LUN, pieces past the end being used ones only (a shrunk LUN).
            let inside: u64 = pieces
                .iter()
                .map(|&(s, t, _)| t.min(cap).saturating_sub(s))
                .sum();
            prop_assert_eq!(inside, cap, "free + reserved + used != capacity of {:?}", v);
            for &(_, t, kind) in &pieces {
                prop_assert!(t <= cap || kind == "used");
            }
        }
        // What is left is on LUNs that are gone: used only.
        for (key, pieces) in all {
            for (_, _, kind) in pieces {
                prop_assert_eq!(kind, "used", "{:?} on a LUN that is gone", key);
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn prop_no_block_twice_and_books_balance(ops in prop::collection::vec(op(), 1..60)) {
            let mut x = Extents::new();
            let mut present = san(0xFF, 0);
            x.set_volumes(&present);
            let mut now = 0;
            let names = [name("v0"), name("v1"), name("v2")];
            for op in ops {
                match op {
                    Op::Reserve { id, media, mib, ttl } => {
                        let before: Vec<RealExtent> =
                            x.free().into_iter().flat_map(|r| r.extents).collect();
                        let had = x.reservation(rid(id)).map(<[_]>::to_vec);
                        let got = x.reserve(now, rid(id), media, mib * MIB, ttl);
                        if let Some(had) = had {
                            prop_assert_eq!(&got, &had, "a retry gives the same extents");
                        } else {
                            // Taken from what was free, of that media.
                            for e in &got {
                                let (s, t) = span(e);
                                let was_free = before.iter().any(|f| {
                                    let (fs, ft) = span(f);
                                    f.array == e.array && f.lun == e.lun && fs <= s && t <= ft
                                });
                                prop_assert!(was_free, "{:?} was not free", e);
                            }
                            if media != MediaType::Tape {
                                let bytes: u64 = got.iter().map(RealExtent::bytes).sum();
                                prop_assert!(bytes <= (mib * MIB).div_ceil(MIB) * MIB);
                            }
                        }
                    }
                    Op::Release(id) => {
                        let had = x.reservation(rid(id)).is_some();
                        prop_assert_eq!(x.release(rid(id)), had);
                    }
                    Op::Commit(id, n) => {
                        let had = x.reservation(rid(id)).is_some();
                        prop_assert_eq!(x.commit(rid(id), &names[n as usize]), had);
                    }
                    Op::Expire(dt) => {
                        now += dt;
                        for id in x.expire(now) {
                            prop_assert!(x.reservation(id).is_none());
                        }
                        prop_assert!(x.poll_timeout().is_none_or(|t| t > now));
                    }
                    Op::Free(n) => {
                        x.free_volume(&names[n as usize]);
                        prop_assert!(x.used().iter().all(|r| r.volume != names[n as usize]));
                    }
                    Op::SetVolumes { present: p, grow } => {
                        present = san(p, grow);
                        x.set_volumes(&present);
                    }
                    Op::Mark { vol, lun, start, blocks } => {
                        let (array, lun) = ([A, B][lun as usize % 2], u64::from(lun / 2));
                        let e = RealExtent {
                            array,
                            array_id: FcId::from_parts(1, array.to_u64() as u8, 0),
                            lun,
                            start: start * 512,
                            blocks: blocks * 512,
                            block_size: 512,
                        };
                        let _ = x.mark_used(&names[vol as usize], &[e]);
                    }
                }
                check_books(&x, &present)?;
            }
        }
    }
}
