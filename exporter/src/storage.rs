//! TEMPORARY minimal storage opener (being replaced by the full one).

use std::sync::Arc;

use object_store::ObjectStore;

/// Where buckets are written.
#[derive(Debug, Clone, serde::Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum StorageConfig {
    /// A local directory.
    Local {
        /// The directory.
        path: std::path::PathBuf,
    },
    /// In memory.
    Memory,
}

/// Opens the store.
pub fn open(config: &StorageConfig) -> Result<Arc<dyn ObjectStore>, String> {
    match config {
        StorageConfig::Local { path } => {
            std::fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))?;
            object_store::local::LocalFileSystem::new_with_prefix(path)
                .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
                .map_err(|e| e.to_string())
        }
        StorageConfig::Memory => Ok(Arc::new(object_store::memory::InMemory::new())),
    }
}
