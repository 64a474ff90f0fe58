//! [`TopicTable`]: the live topics by name, and their names by topic id (Fetch v13+ and
//! Metadata v10+ name topics by id, KIP-516): one structure behind one lock, so the two
//! never disagree. Reads go through `Deref` to the name map; changes only through
//! [`TopicTable::insert`] and [`TopicTable::remove`], which keep the id index, and
//! [`TopicTable::get_mut`], which cannot change a topic's id.

use std::collections::{BTreeMap, HashMap};
use std::ops::Deref;

use super::manager::TopicEntry;

#[derive(Default)]
pub(crate) struct TopicTable {
    by_name: BTreeMap<String, TopicEntry>,
    names_by_id: HashMap<uuid::Uuid, String>,
}

impl TopicTable {
    /// Adds (or replaces) the topic `name`; topic ids are unique, so a replaced entry's id
    /// goes unless the new entry has it too.
    pub fn insert(&mut self, name: String, entry: TopicEntry) {
        let id = entry.info.id;
        if let Some(old) = self.by_name.insert(name.clone(), entry) {
            self.names_by_id.remove(&old.info.id);
        }
        self.names_by_id.insert(id, name);
    }

    pub fn remove(&mut self, name: &str) -> Option<TopicEntry> {
        let entry = self.by_name.remove(name)?;
        self.names_by_id.remove(&entry.info.id);
        Some(entry)
    }

    /// The entry to change in place; its `info.id` must not be changed (the index keeps it).
    pub fn get_mut(&mut self, name: &str) -> Option<&mut TopicEntry> {
        self.by_name.get_mut(name)
    }

    /// The name of the topic with this id.
    pub fn name_of(&self, id: &uuid::Uuid) -> Option<&str> {
        self.names_by_id.get(id).map(String::as_str)
    }
}

impl Deref for TopicTable {
    type Target = BTreeMap<String, TopicEntry>;

    fn deref(&self) -> &Self::Target {
        &self.by_name
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::log::{TopicConfig, TopicInfo};

    fn entry(name: &str, id: u128) -> TopicEntry {
        TopicEntry {
            info: TopicInfo {
                name: name.to_owned(),
                id: uuid::Uuid::from_u128(id),
                partitions: 0,
                overrides: BTreeMap::new(),
                config: Arc::new(TopicConfig::default()),
            },
            partitions: Vec::new(),
        }
    }

    #[test]
    fn the_id_index_follows_inserts_replacements_and_removals() {
        let mut table = TopicTable::default();
        let id = |n| uuid::Uuid::from_u128(n);
        table.insert("a".to_owned(), entry("a", 1));
        table.insert("b".to_owned(), entry("b", 2));
        assert_eq!(table.name_of(&id(1)), Some("a"));
        // Re-created under its name with a new id: the old id is gone.
        table.insert("a".to_owned(), entry("a", 3));
        assert_eq!(table.name_of(&id(1)), None);
        assert_eq!(table.name_of(&id(3)), Some("a"));
        // Replaced by an entry with the same id: the id stays.
        table.insert("a".to_owned(), entry("a", 3));
        assert_eq!(table.name_of(&id(3)), Some("a"));
        assert!(table.remove("b").is_some());
        assert_eq!(table.name_of(&id(2)), None);
        assert!(table.remove("b").is_none());
        assert_eq!(table.len(), 1);
    }
}
