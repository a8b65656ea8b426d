//! Reading a store back at startup: event definitions, snapshots, then each section's
//! records, under the torn-tail policy described in the [store](super) module.

use rocksdb::{IteratorMode, WriteBatch};

use super::{sync_write, Store, StoreError, CF_META, CF_SNAPSHOTS, CF_WAL, META_EVENT_PREFIX};
use crate::wal::{self, EventDefinition, FrameError, Record, SectionSnapshot};
use rocksdb::Direction;

/// State recovered from disk, for the registry to rebuild inventories from.
pub struct Recovered {
    /// In section-key order.
    pub events: Vec<RecoveredEvent>,
}

pub struct RecoveredEvent {
    pub definition: EventDefinition,
    /// By section index in the venue.
    pub sections: Vec<RecoveredSection>,
}

#[derive(Default)]
pub struct RecoveredSection {
    pub snapshot: Option<SectionSnapshot>,
    /// Records after the snapshot, in order.
    pub records: Vec<Record>,
    /// Sequence number of the last record (or of the snapshot); the next is one more.
    pub last_seq: u64,
}

/// Where a section key lives: the event's index and the section's index in it.
fn section_of(events: &[RecoveredEvent], section: u32) -> Option<(usize, usize)> {
    events.iter().enumerate().find_map(|(index, event)| {
        let first = event.definition.first_section_key;
        (first..first + event.sections.len() as u32).contains(&section).then_some((index, (section - first) as usize))
    })
}

impl Store {
    fn corrupt(&self, what: String, problem: String) -> StoreError {
        StoreError::Corrupt { path: self.path.clone(), what, problem }
    }

    /// Reads every event definition, snapshot and record (see the torn-tail policy).
    pub fn recover(&self) -> Result<Recovered, StoreError> {
        let mut events = self.recover_definitions()?;
        self.recover_snapshots(&mut events)?;
        self.recover_records(&mut events, None)?;
        Ok(Recovered { events })
    }

    /// Every stored event definition, in section-key order (checked as [`recover`](Self::recover) does).
    pub fn event_definitions(&self) -> Result<Vec<EventDefinition>, StoreError> {
        Ok(self.recover_definitions()?.into_iter().map(|event| event.definition).collect())
    }

    /// One event's snapshots and records, for a node that takes the event over in
    /// cluster mode (after it wrote the log's tail here): the other events' are not read.
    pub fn recover_event(&self, event: &str) -> Result<RecoveredEvent, StoreError> {
        let mut events = self.recover_definitions()?;
        events.retain(|recovered| recovered.definition.event.id == event);
        if events.is_empty() {
            return Err(self.corrupt(format!("event definition {event}"), "not stored".into()));
        }
        let first = events[0].definition.first_section_key;
        let keys = first..first + events[0].sections.len() as u32;
        for (index, key) in keys.clone().enumerate() {
            let Some(value) =
                self.db.get_cf(self.cf(CF_SNAPSHOTS), wal::snapshot_key(key)).map_err(|source| self.rocks(source))?
            else {
                continue;
            };
            let snapshot: SectionSnapshot = wal::decode(&value)
                .map_err(|error| self.corrupt(format!("snapshot of section {key}"), error.to_string()))?;
            events[0].sections[index].last_seq = snapshot.last_seq;
            events[0].sections[index].snapshot = Some(snapshot);
        }
        self.recover_records(&mut events, Some(keys))?;
        Ok(events.remove(0))
    }

    /// Event definitions in section-key order; their keys must be dense from 0.
    fn recover_definitions(&self) -> Result<Vec<RecoveredEvent>, StoreError> {
        let mut events = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_META), IteratorMode::Start) {
            let (key, value) = item.map_err(|source| self.rocks(source))?;
            let Some(id) = key.strip_prefix(META_EVENT_PREFIX) else { continue };
            let what = || format!("event definition {}", String::from_utf8_lossy(id));
            let definition: EventDefinition =
                wal::decode(&value).map_err(|error| self.corrupt(what(), error.to_string()))?;
            // Pair assertion after reading: the definition is the one stored under its id.
            if definition.event.id.as_bytes() != id {
                return Err(self.corrupt(what(), format!("holds event {:?}", definition.event.id)));
            }
            let sections = (0..definition.venue.sections.len()).map(|_| RecoveredSection::default()).collect();
            events.push(RecoveredEvent { definition, sections });
        }
        events.sort_by_key(|event| event.definition.first_section_key);
        let mut next_key = 0;
        for event in &events {
            if event.definition.first_section_key != next_key {
                let problem =
                    format!("section keys start at {}, expected {next_key}", event.definition.first_section_key);
                return Err(self.corrupt(format!("event definition {}", event.definition.event.id), problem));
            }
            next_key += event.sections.len() as u32;
        }
        Ok(events)
    }

    fn recover_snapshots(&self, events: &mut [RecoveredEvent]) -> Result<(), StoreError> {
        for item in self.db.iterator_cf(self.cf(CF_SNAPSHOTS), IteratorMode::Start) {
            let (key, value) = item.map_err(|source| self.rocks(source))?;
            let section = u32::from_be_bytes(
                key.as_ref().try_into().map_err(|_| self.corrupt("snapshot key".into(), format!("{key:?}")))?,
            );
            let what = || format!("snapshot of section {section}");
            let (event, index) =
                section_of(events, section).ok_or_else(|| self.corrupt(what(), "no event owns it".into()))?;
            let snapshot: SectionSnapshot =
                wal::decode(&value).map_err(|error| self.corrupt(what(), error.to_string()))?;
            let recovered = &mut events[event].sections[index];
            recovered.last_seq = snapshot.last_seq;
            recovered.snapshot = Some(snapshot);
        }
        Ok(())
    }

    /// Records, each section's in order; a damaged tail is dropped (and deleted), any
    /// other damage or a gap is corruption.
    /// `keys`: only these sections' records (the others are not read).
    fn recover_records(
        &self,
        events: &mut [RecoveredEvent],
        keys: Option<std::ops::Range<u32>>,
    ) -> Result<(), StoreError> {
        // `torn` collects each section's damaged tail.
        let mut torn: Vec<(u32, u64, FrameError)> = Vec::new();
        let mut torn_keys = Vec::new();
        let start = keys.as_ref().map(|keys| wal::record_key(keys.start, 0));
        let mode = match &start {
            Some(start) => IteratorMode::From(start, Direction::Forward),
            None => IteratorMode::Start,
        };
        for item in self.db.iterator_cf(self.cf(CF_WAL), mode) {
            let (key, value) = item.map_err(|source| self.rocks(source))?;
            let (section, seq) =
                wal::parse_record_key(&key).ok_or_else(|| self.corrupt("record key".into(), format!("{key:?}")))?;
            if keys.as_ref().is_some_and(|keys| section >= keys.end) {
                break;
            }
            let (event, index) = section_of(events, section)
                .ok_or_else(|| self.corrupt(format!("record {section}/{seq}"), "no event owns its section".into()))?;
            let record = match wal::decode::<Record>(&value) {
                Ok(record) => record,
                Err(error) => {
                    torn.push((section, seq, error));
                    torn_keys.push(key);
                    continue;
                }
            };
            if let Some((bad_section, bad_seq, error)) = torn.iter().find(|(s, _, _)| *s == section) {
                let what = format!("record of section {bad_section} seq {bad_seq}");
                return Err(self.corrupt(what, format!("{error}, and valid records follow it (seq {seq})")));
            }
            let recovered = &mut events[event].sections[index];
            if seq != recovered.last_seq + 1 {
                let what = format!("log of section {section}");
                return Err(self.corrupt(what, format!("record {seq} follows {}", recovered.last_seq)));
            }
            recovered.last_seq = seq;
            recovered.records.push(record);
        }
        if torn.is_empty() {
            return Ok(());
        }
        for (section, seq, error) in &torn {
            tracing::warn!(section, seq, %error, "dropping a damaged record at the tail of a section's log");
        }
        let mut batch = WriteBatch::default();
        for key in torn_keys {
            batch.delete_cf(self.cf(CF_WAL), key);
        }
        self.db.write_opt(batch, &sync_write()).map_err(|source| self.rocks(source))
    }
}
