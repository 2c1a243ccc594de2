//! Container statistics in the protobuf shapes containerd expects.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use containerd_shim_protos::cgroups::metrics as pb1;
use containerd_shim_protos::cgroups_v2::metrics as pb2;
use protobuf::well_known_types::any::Any;
use protobuf::Message;

use crate::error::CgroupError;
use crate::files;
use crate::parse;

pub(crate) mod v1;
pub(crate) mod v2;

/// Type URL of cgroup v1 metrics inside a `google.protobuf.Any`.
///
/// containerd's Go shim marshals with `typeurl.MarshalAny`, which uses the
/// bare protobuf message name (no `type.googleapis.com/` prefix).
pub const V1_METRICS_TYPE_URL: &str = "io.containerd.cgroups.v1.Metrics";
/// Type URL of cgroup v2 metrics inside a `google.protobuf.Any`.
pub const V2_METRICS_TYPE_URL: &str = "io.containerd.cgroups.v2.Metrics";

/// Statistics of a cgroup, as returned by the Task `Stats` RPC.
#[derive(Debug, Clone, PartialEq)]
pub enum Metrics {
    /// `io.containerd.cgroups.v1.Metrics`.
    V1(pb1::Metrics),
    /// `io.containerd.cgroups.v2.Metrics`.
    V2(pb2::Metrics),
}

impl Metrics {
    /// The type URL containerd uses for this kind of metrics.
    pub fn type_url(&self) -> &'static str {
        match self {
            Metrics::V1(_) => V1_METRICS_TYPE_URL,
            Metrics::V2(_) => V2_METRICS_TYPE_URL,
        }
    }

    /// Serializes the metrics into an `Any`, ready for `StatsResponse.stats`.
    pub fn to_any(&self) -> Any {
        let bytes = match self {
            Metrics::V1(m) => m.write_to_bytes(),
            Metrics::V2(m) => m.write_to_bytes(),
        };
        let value = bytes.unwrap_or_else(|e| {
            // Only possible for messages over 2 GiB.
            log::error!("cannot serialize {}: {e}", self.type_url());
            Vec::new()
        });
        Any {
            type_url: self.type_url().to_owned(),
            value,
            ..Default::default()
        }
    }
}

/// Reads a single-value file of `dir`; `Ok(None)` when it does not exist.
/// `max` maps to `max_value`.
pub(crate) fn read_u64(dir: &Path, file: &str, max_value: u64) -> Result<Option<u64>, CgroupError> {
    let path = dir.join(file);
    let Some(text) = files::read_optional(&path)? else {
        return Ok(None);
    };
    match parse::parse_single(&text, max_value) {
        Some(v) => Ok(Some(v)),
        None => Err(CgroupError::Parse {
            path,
            reason: format!("expected a number, got {:?}", text.trim()),
        }),
    }
}

/// Reads a flat-keyed file of `dir`; `Ok(None)` when it does not exist.
pub(crate) fn read_kv(dir: &Path, file: &str) -> Result<Option<HashMap<String, u64>>, CgroupError> {
    Ok(files::read_optional(&dir.join(file))?.map(|t| parse::parse_flat_keyed(&t)))
}

/// One line of `rdma.current` / `rdma.max`: device, `hca_handle`, `hca_object`.
pub(crate) type Rdma = (String, u32, u32);

/// `rdma.current` and `rdma.max`, in that order.
pub(crate) type RdmaFiles = (Vec<Rdma>, Vec<Rdma>);

/// `rdma.current` and `rdma.max` of `dir`, parsed (a missing one is empty);
/// `Ok(None)` when neither exists.
pub(crate) fn read_rdma(dir: &Path) -> Result<Option<RdmaFiles>, CgroupError> {
    let read = |file: &str| -> Result<Option<Vec<Rdma>>, CgroupError> {
        Ok(files::read_optional(&dir.join(file))?.map(|t| parse::parse_rdma(&t)))
    };
    let (current, limit) = (read("rdma.current")?, read("rdma.max")?);
    if current.is_none() && limit.is_none() {
        return Ok(None);
    }
    Ok(Some((
        current.unwrap_or_default(),
        limit.unwrap_or_default(),
    )))
}

/// Huge page size labels of this host (`2MB`, `1GB`, ...), smallest first.
pub(crate) fn hugepage_sizes() -> &'static [String] {
    static SIZES: OnceLock<Vec<String>> = OnceLock::new();
    SIZES.get_or_init(|| {
        let Ok(dir) = fs::read_dir("/sys/kernel/mm/hugepages") else {
            return Vec::new();
        };
        let mut sizes: Vec<(u64, String)> = dir
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let kb: u64 = name
                    .strip_prefix("hugepages-")?
                    .strip_suffix("kB")?
                    .parse()
                    .ok()?;
                Some((kb, parse::hugepage_label(&name)?))
            })
            .collect();
        sizes.sort();
        sizes.into_iter().map(|(_, label)| label).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use protobuf::MessageField;

    #[test]
    fn any_type_urls_and_roundtrip() {
        let mut m1 = pb1::Metrics::new();
        m1.pids = MessageField::some(pb1::PidsStat {
            current: 3,
            limit: 10,
            ..Default::default()
        });
        let any = Metrics::V1(m1.clone()).to_any();
        assert_eq!(any.type_url, "io.containerd.cgroups.v1.Metrics");
        assert_eq!(pb1::Metrics::parse_from_bytes(&any.value).unwrap(), m1);

        let mut m2 = pb2::Metrics::new();
        m2.cpu = MessageField::some(pb2::CPUStat {
            usage_usec: 7,
            ..Default::default()
        });
        let any = Metrics::V2(m2.clone()).to_any();
        assert_eq!(any.type_url, "io.containerd.cgroups.v2.Metrics");
        assert_eq!(pb2::Metrics::parse_from_bytes(&any.value).unwrap(), m2);
    }
}
