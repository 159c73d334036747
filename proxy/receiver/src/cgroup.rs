//! The memory limit and usage of the cgroup weir runs in (a container's), for the memory guard: under
//! a container limit, weir derives `limits.max_memory_bytes` from the cgroup's limit unless it is
//! configured, and measures the cgroup's working set (usage less inactive file pages, which the kernel
//! reclaims before it kills anyone: the figure the Kubernetes kubelet evicts by) besides its own
//! resident memory, so that page cache from a durable queue does not count as pressure while memory the
//! process cannot see (another process in the container, kernel memory charged to it) does.
//!
//! cgroup v2 (the unified hierarchy): `memory.max` of the process's cgroup and of every ancestor (the
//! lowest wins), `memory.current`, `inactive_file` of `memory.stat`. cgroup v1: `hierarchical_memory_limit`
//! of `memory.stat`, `memory.usage_in_bytes`, `total_inactive_file`. The process's cgroup comes from
//! `/proc/self/cgroup`; inside a cgroup namespace its path is `/` and the mount's root is the cgroup.

use std::path::{Path, PathBuf};

/// Limits at or above this (v1's "unlimited" is 2^63 rounded to a page) are no limit.
const UNLIMITED: u64 = 1 << 62;

/// Which hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The unified hierarchy.
    V2,
    /// The memory controller's own hierarchy.
    V1,
}

/// The memory cgroup of this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    version: Version,
    /// The cgroup's directory.
    dir: PathBuf,
    /// The hierarchy's mount point (v2: where the walk for ancestors' limits stops).
    mount: PathBuf,
}

impl Cgroup {
    /// The cgroup of this process, if its memory controller is mounted where it usually is.
    pub fn detect() -> Option<Self> {
        let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        Self::detect_in(&text, Path::new("/sys/fs/cgroup"))
    }

    /// [`Cgroup::detect`] from the text of `/proc/self/cgroup` and the cgroup file system's root.
    pub fn detect_in(proc_self_cgroup: &str, root: &Path) -> Option<Self> {
        let mut v2_path = None;
        let mut v1_path = None;
        for line in proc_self_cgroup.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if id == "0" && controllers.is_empty() {
                v2_path = Some(path);
            } else if controllers.split(',').any(|c| c == "memory") {
                v1_path = Some(path);
            }
        }
        let within = |mount: &Path, path: &str| {
            let dir = mount.join(path.trim_start_matches('/'));
            // Inside a cgroup namespace the listed path may not exist under the mount: the mount's
            // root is then the process's cgroup.
            if dir.is_dir() {
                dir
            } else {
                mount.to_path_buf()
            }
        };
        if let Some(path) = v1_path {
            let mount = root.join("memory");
            let dir = within(&mount, path);
            if dir.join("memory.usage_in_bytes").exists() {
                return Some(Self {
                    version: Version::V1,
                    dir,
                    mount,
                });
            }
        }
        if let Some(path) = v2_path
            && root.join("cgroup.controllers").exists()
        {
            let dir = within(root, path);
            if dir.join("memory.current").exists() {
                return Some(Self {
                    version: Version::V2,
                    dir,
                    mount: root.to_path_buf(),
                });
            }
        }
        None
    }

    /// Which hierarchy the cgroup is in.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The memory limit in bytes, if there is one.
    pub fn limit(&self) -> Option<u64> {
        let limit = match self.version {
            Version::V1 => stat(&self.dir, "hierarchical_memory_limit")
                .or_else(|| number(&self.dir.join("memory.limit_in_bytes")))?,
            Version::V2 => {
                let mut lowest: Option<u64> = None;
                let mut dir = self.dir.as_path();
                loop {
                    if let Some(l) = number(&dir.join("memory.max")) {
                        lowest = Some(lowest.map_or(l, |x| x.min(l)));
                    }
                    if dir == self.mount {
                        break;
                    }
                    match dir.parent() {
                        Some(p) if p.starts_with(&self.mount) => dir = p,
                        _ => break,
                    }
                }
                lowest?
            }
        };
        (limit < UNLIMITED).then_some(limit)
    }

    /// The working set: usage less inactive file pages.
    pub fn working_set(&self) -> Option<u64> {
        let (usage, inactive) = match self.version {
            Version::V1 => (
                number(&self.dir.join("memory.usage_in_bytes"))?,
                stat(&self.dir, "total_inactive_file").unwrap_or(0),
            ),
            Version::V2 => (
                number(&self.dir.join("memory.current"))?,
                stat(&self.dir, "inactive_file").unwrap_or(0),
            ),
        };
        Some(usage.saturating_sub(inactive))
    }
}

/// A file holding one number (`max`, or anything else, is none).
fn number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The value of `key` in the cgroup's `memory.stat`.
fn stat(dir: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("memory.stat")).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn v2_takes_the_lowest_limit_up_the_tree_and_leaves_inactive_files_out() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(r, "cgroup.controllers", "cpu memory\n");
        write(r, "kubepods/memory.max", "1073741824\n");
        write(r, "kubepods/pod1/memory.max", "max\n");
        write(r, "kubepods/pod1/weir/memory.max", "2147483648\n");
        write(r, "kubepods/pod1/weir/memory.current", "300000000\n");
        write(
            r,
            "kubepods/pod1/weir/memory.stat",
            "anon 200000000\nfile 100000000\ninactive_file 80000000\n",
        );
        let c = Cgroup::detect_in("0::/kubepods/pod1/weir\n", r).expect("found");
        assert_eq!(c.version(), Version::V2);
        assert_eq!(c.limit(), Some(1 << 30), "the pod's limit is the lower");
        assert_eq!(c.working_set(), Some(220_000_000));
    }

    #[test]
    fn v2_in_a_namespace_and_without_a_limit() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(r, "cgroup.controllers", "memory\n");
        write(r, "memory.max", "max\n");
        write(r, "memory.current", "5000\n");
        // The listed path does not exist under the mount: the mount is the cgroup.
        let c = Cgroup::detect_in("0::/\n", r).unwrap();
        assert_eq!(c.limit(), None);
        assert_eq!(
            c.working_set(),
            Some(5000),
            "no memory.stat: no inactive files"
        );
    }

    #[test]
    fn v1_reads_the_hierarchical_limit_and_ignores_its_unlimited_value() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(r, "memory/docker/abc/memory.usage_in_bytes", "900\n");
        write(
            r,
            "memory/docker/abc/memory.stat",
            "cache 500\nhierarchical_memory_limit 536870912\ntotal_inactive_file 400\n",
        );
        let text = "12:pids:/docker/abc\n4:memory:/docker/abc\n1:name=systemd:/docker/abc\n";
        let c = Cgroup::detect_in(text, r).unwrap();
        assert_eq!(c.version(), Version::V1);
        assert_eq!(c.limit(), Some(512 << 20));
        assert_eq!(c.working_set(), Some(500));
        write(
            r,
            "memory/docker/abc/memory.stat",
            "hierarchical_memory_limit 9223372036854771712\n",
        );
        assert_eq!(c.limit(), None, "v1's unlimited");
    }

    #[test]
    fn no_memory_controller_is_no_cgroup() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(Cgroup::detect_in("0::/\n", root.path()), None);
        assert_eq!(Cgroup::detect_in("garbage", root.path()), None);
    }
}
