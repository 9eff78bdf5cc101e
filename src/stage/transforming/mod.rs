//! Transforming stages: `template`, `replace`, `timestamp`, `output`, `labels`, `labelallow`,
//! `labeldrop`, `static_labels`, `structured_metadata` (`non_indexed_labels`), `tenant`.

use std::sync::Arc;

use super::{BuildContext, StageFactory};
use crate::config::StageConfig;

/// Build `cfg` if it is one of this family's stages.
pub fn build(
    cfg: &StageConfig,
    _ctx: &BuildContext,
) -> Option<Result<Arc<dyn StageFactory>, String>> {
    let _ = cfg;
    None
}
