//! Filtering and accounting stages: `match`, `drop`, `limit`, `sampling`, `metrics`, `luhn`.

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
