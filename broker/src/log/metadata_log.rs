//! Topic metadata as a log: `<data_dir>/__cluster_metadata/metadata.log`.
//!
//! File format: records of `[len u32 BE][crc32c u32 BE][json]`, the CRC over the JSON. Each
//! record is fsynced before the change it describes is acknowledged. Replay stops at the
//! first torn or corrupt record and truncates it away (it was never acknowledged). When the
//! file grows past `snapshot_bytes` it is rewritten as one create record per live topic
//! and one broker-overrides record per non-empty dynamic broker set (tmp + fsync + rename).
//! `set_broker_overrides` came later than the topic records: a log without any reads as
//! before (no dynamic broker configs). Thread-safety: none inside; the manager holds it in a mutex.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::checkpoint::sync_dir;
use super::LogError;

pub(crate) const METADATA_DIR: &str = "__cluster_metadata";
const METADATA_FILE: &str = "metadata.log";
/// One record's JSON may not exceed this (a topic with huge overrides is refused).
const RECORD_BYTES_MAX: usize = 1 << 20;
/// The whole log is read into memory at replay; past this it is refused as not ours.
const LOG_BYTES_MAX: u64 = 1 << 30;
/// Rewrite as a snapshot past this size.
const SNAPSHOT_BYTES: u64 = 4 << 20;
const RECORD_HEADER_BYTES: usize = 8;

/// One change to the topic set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum MetadataRecord {
    CreateTopic {
        name: String,
        id: uuid::Uuid,
        partitions: i32,
        overrides: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
    SetPartitions {
        name: String,
        partitions: i32,
    },
    SetOverrides {
        name: String,
        overrides: BTreeMap<String, String>,
    },
    /// Replaces the dynamic topic defaults of one scope (Kafka's KIP-226 broker configs):
    /// `node_id` `None` is the cluster-wide default, `Some(id)` broker `id`'s own. Keyed by
    /// the topic config each sets (`retention.ms` for `log.retention.ms`): storage knows
    /// topic keys, the API layer maps the broker names. The one broker config that is not
    /// a topic default, `producer.id.expiration.ms`, came later and is kept under its own
    /// name: a version before it leaves that key out at replay, as any key it does not know.
    SetBrokerOverrides {
        node_id: Option<i32>,
        overrides: BTreeMap<String, String>,
    },
}

/// The dynamic topic defaults as replayed: the cluster-wide set and each broker's own.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct BrokerOverrides {
    pub cluster: BTreeMap<String, String>,
    pub per_broker: BTreeMap<i32, BTreeMap<String, String>>,
}

impl BrokerOverrides {
    /// The set of one scope (`None`: cluster-wide).
    pub(crate) fn scope(&self, node_id: Option<i32>) -> Option<&BTreeMap<String, String>> {
        match node_id {
            None => Some(&self.cluster),
            Some(id) => self.per_broker.get(&id),
        }
    }

    fn set(&mut self, node_id: Option<i32>, overrides: BTreeMap<String, String>) {
        match node_id {
            None => self.cluster = overrides,
            Some(id) if overrides.is_empty() => {
                self.per_broker.remove(&id);
            }
            Some(id) => {
                self.per_broker.insert(id, overrides);
            }
        }
    }
}

/// Everything the metadata log replays to.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct MetadataImage {
    pub topics: BTreeMap<String, TopicRecord>,
    pub brokers: BrokerOverrides,
}

/// A topic as replayed from the metadata log.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TopicRecord {
    pub id: uuid::Uuid,
    pub partitions: i32,
    pub overrides: BTreeMap<String, String>,
}

/// Applies one record to the image (replay and live updates share this).
pub(crate) fn apply(image: &mut MetadataImage, record: &MetadataRecord) {
    let topics = &mut image.topics;
    match record {
        MetadataRecord::CreateTopic {
            name,
            id,
            partitions,
            overrides,
        } => {
            topics.insert(
                name.clone(),
                TopicRecord {
                    id: *id,
                    partitions: *partitions,
                    overrides: overrides.clone(),
                },
            );
        }
        MetadataRecord::DeleteTopic { name } => {
            topics.remove(name);
        }
        MetadataRecord::SetPartitions { name, partitions } => {
            if let Some(topic) = topics.get_mut(name) {
                topic.partitions = *partitions;
            }
        }
        MetadataRecord::SetOverrides { name, overrides } => {
            if let Some(topic) = topics.get_mut(name) {
                topic.overrides = overrides.clone();
            }
        }
        MetadataRecord::SetBrokerOverrides { node_id, overrides } => {
            image.brokers.set(*node_id, overrides.clone());
        }
    }
}

/// The open metadata log.
pub(crate) struct MetadataLog {
    path: PathBuf,
    file: File,
    size_bytes: u64,
}

fn encode(record: &MetadataRecord) -> Result<Vec<u8>, LogError> {
    let json = serde_json::to_vec(record).map_err(|e| LogError::InvalidConfig(e.to_string()))?;
    if json.len() > RECORD_BYTES_MAX {
        return Err(LogError::InvalidConfig(format!(
            "metadata record of {} bytes is too large",
            json.len()
        )));
    }
    let mut out = Vec::with_capacity(RECORD_HEADER_BYTES + json.len());
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&runnel_protocol::crc::crc32c(&json).to_be_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

/// Decodes records from the start of `bytes`; returns them and the valid length.
fn decode_all(bytes: &[u8]) -> (Vec<MetadataRecord>, usize) {
    let mut records = Vec::new();
    let mut used = 0usize;
    // Each step consumes ≥ 8 bytes: bounded by bytes.len().
    while let Some(header) = bytes.get(used..used + RECORD_HEADER_BYTES) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        if len > RECORD_BYTES_MAX {
            break;
        }
        let Some(json) = bytes.get(used + RECORD_HEADER_BYTES..used + RECORD_HEADER_BYTES + len)
        else {
            break;
        };
        if runnel_protocol::crc::crc32c(json) != crc {
            break;
        }
        let Ok(record) = serde_json::from_slice::<MetadataRecord>(json) else {
            break;
        };
        records.push(record);
        used += RECORD_HEADER_BYTES + len;
    }
    (records, used)
}

impl MetadataLog {
    /// Opens (creating) the log under `data_dir` and replays it.
    pub(crate) fn open(data_dir: &Path) -> Result<(MetadataLog, MetadataImage), LogError> {
        let dir = data_dir.join(METADATA_DIR);
        fs::create_dir_all(&dir)?;
        let path = dir.join(METADATA_FILE);
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let len_bytes = file.metadata()?.len();
        if len_bytes > LOG_BYTES_MAX {
            return Err(LogError::Corruption {
                path,
                detail: format!("{len_bytes} bytes is not a metadata log"),
            });
        }
        let bytes = fs::read(&path)?;
        let (records, valid_bytes) = decode_all(&bytes);
        if valid_bytes < bytes.len() {
            tracing::warn!(path = %path.display(), valid_bytes, "truncating torn metadata log tail");
            file.set_len(valid_bytes as u64)?;
            file.sync_all()?;
        }
        let mut image = MetadataImage::default();
        for record in &records {
            apply(&mut image, record);
        }
        Ok((
            MetadataLog {
                path,
                file,
                size_bytes: valid_bytes as u64,
            },
            image,
        ))
    }

    /// Appends and fsyncs one record.
    pub(crate) fn append(&mut self, record: &MetadataRecord) -> Result<(), LogError> {
        let encoded = encode(record)?;
        if let Err(e) = self
            .file
            .write_all(&encoded)
            .and_then(|()| self.file.sync_data())
        {
            // Drop a possibly torn record so the next append does not follow garbage.
            let _ = self.file.set_len(self.size_bytes);
            return Err(e.into());
        }
        self.size_bytes += encoded.len() as u64;
        Ok(())
    }

    pub(crate) fn wants_snapshot(&self) -> bool {
        self.size_bytes > SNAPSHOT_BYTES
    }

    /// Rewrites the log as one create record per topic in `image` and one record per
    /// non-empty dynamic broker set.
    ///
    /// The new file is opened for appends before it takes the log's name (the handle
    /// follows the file through the rename), so from the rename on every append goes to
    /// the file that is the log, whatever fails afterwards: reopening by name after the
    /// rename could fail and leave appends going to the replaced file, lost at the next
    /// start. An error before the rename leaves the old log in use, whole.
    pub(crate) fn snapshot(&mut self, image: &MetadataImage) -> Result<(), LogError> {
        let mut contents = Vec::new();
        let brokers = &image.brokers;
        let scopes = std::iter::once((None, &brokers.cluster))
            .chain(brokers.per_broker.iter().map(|(id, set)| (Some(*id), set)));
        for (node_id, overrides) in scopes.filter(|(_, set)| !set.is_empty()) {
            contents.extend(encode(&MetadataRecord::SetBrokerOverrides {
                node_id,
                overrides: overrides.clone(),
            })?);
        }
        for (name, topic) in &image.topics {
            contents.extend(encode(&MetadataRecord::CreateTopic {
                name: name.clone(),
                id: topic.id,
                partitions: topic.partitions,
                overrides: topic.overrides.clone(),
            })?);
        }
        let tmp = self.path.with_extension("tmp");
        let mut written = File::create(&tmp)?;
        written.write_all(&contents)?;
        written.sync_all()?;
        drop(written);
        let appender = OpenOptions::new().read(true).append(true).open(&tmp)?;
        fs::rename(&tmp, &self.path)?;
        self.file = appender;
        self.size_bytes = contents.len() as u64;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn create(name: &str, partitions: i32) -> MetadataRecord {
        MetadataRecord::CreateTopic {
            name: name.to_string(),
            id: uuid::Uuid::new_v4(),
            partitions,
            overrides: BTreeMap::new(),
        }
    }

    #[test]
    fn replays_and_truncates_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, image) = MetadataLog::open(dir.path()).unwrap();
        assert!(image.topics.is_empty());
        log.append(&create("a", 1)).unwrap();
        log.append(&create("b", 2)).unwrap();
        log.append(&MetadataRecord::SetPartitions {
            name: "b".into(),
            partitions: 5,
        })
        .unwrap();
        log.append(&MetadataRecord::DeleteTopic { name: "a".into() })
            .unwrap();
        drop(log);
        let path = dir.path().join(METADATA_DIR).join(METADATA_FILE);
        let good_len = fs::metadata(&path).unwrap().len();
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&encode(&create("c", 1)).unwrap()[..20])
            .unwrap();
        drop(file);
        let (mut log, image) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(image.topics.keys().collect::<Vec<_>>(), vec!["b"]);
        assert_eq!(image.topics["b"].partitions, 5);
        assert_eq!(fs::metadata(&path).unwrap().len(), good_len);
        log.append(&create("d", 1)).unwrap();
        log.snapshot(&image).unwrap();
        let (_, again) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(again, image);
    }

    #[test]
    fn corrupt_record_stops_replay() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = MetadataLog::open(dir.path()).unwrap();
        log.append(&create("a", 1)).unwrap();
        log.append(&create("b", 1)).unwrap();
        drop(log);
        let path = dir.path().join(METADATA_DIR).join(METADATA_FILE);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x55;
        fs::write(&path, &bytes).unwrap();
        let (_, image) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(image.topics.keys().collect::<Vec<_>>(), vec!["a"]);
    }

    fn broker_set(node_id: Option<i32>, pairs: &[(&str, &str)]) -> MetadataRecord {
        MetadataRecord::SetBrokerOverrides {
            node_id,
            overrides: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn broker_overrides_replay_and_survive_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = MetadataLog::open(dir.path()).unwrap();
        log.append(&create("a", 1)).unwrap();
        log.append(&broker_set(None, &[("retention.ms", "1000")]))
            .unwrap();
        log.append(&broker_set(Some(3), &[("segment.ms", "5000")]))
            .unwrap();
        log.append(&broker_set(Some(4), &[("segment.ms", "6000")]))
            .unwrap();
        // An empty set removes the broker's entry.
        log.append(&broker_set(Some(4), &[])).unwrap();
        drop(log);
        let (mut log, image) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(image.brokers.cluster["retention.ms"], "1000");
        assert_eq!(image.brokers.per_broker.keys().collect::<Vec<_>>(), [&3]);
        assert_eq!(image.brokers.scope(Some(3)).unwrap()["segment.ms"], "5000");
        assert!(image.topics.contains_key("a"));
        log.snapshot(&image).unwrap();
        drop(log);
        let (_, again) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(again, image);
    }

    /// A log written before broker overrides existed (topic records only) reads as before.
    #[test]
    fn topic_records_keep_their_format() {
        let json = br#"{"type":"set_overrides","name":"t","overrides":{"retention.ms":"5"}}"#;
        let record: MetadataRecord = serde_json::from_slice(json).unwrap();
        assert!(matches!(record, MetadataRecord::SetOverrides { .. }));
        let json = serde_json::to_string(&broker_set(None, &[("retention.ms", "5")])).unwrap();
        assert_eq!(
            json,
            r#"{"type":"set_broker_overrides","node_id":null,"overrides":{"retention.ms":"5"}}"#
        );
    }
}
