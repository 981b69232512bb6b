//! Tuning profiles (`tuning/profiles/*.conf`, embedded) and `weir tune apply`'s plan.
//!
//! A profile is `key = value` lines with `#` comments saying why. A key is a sysctl name
//! (`net.core.somaxconn`, written to `/proc/sys/net/core/somaxconn`) or an absolute
//! `/sys` path; a leading `?` marks a key set only where its file exists. `plan` compares each with the machine (through `Probe` roots) and keeps
//! only what differs; `apply` writes those values and stops at the first failure,
//! naming the file and the reason. Nothing is written without the caller's go-ahead.

use std::path::PathBuf;

use crate::check::Probe;

/// The profiles shipped with weir: (name, text).
pub const PROFILES: &[(&str, &str)] = &[
    ("throughput", include_str!("../profiles/throughput.conf")),
    ("latency", include_str!("../profiles/latency.conf")),
];

/// One `key = value` line of a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    pub value: String,
    /// Written with a leading `?`: set only where the file exists (a knob some
    /// kernels or machines lack, such as a VM's haltpoll driver).
    pub optional: bool,
}

/// Parses a profile; the error names the line.
pub fn parse(text: &str) -> Result<Vec<Setting>, String> {
    let mut settings = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!(
                "line {}: expected key = value, got '{line}'",
                number + 1
            ));
        };
        let (key, value) = (key.trim(), value.trim());
        let (key, optional) = match key.strip_prefix('?') {
            Some(key) => (key.trim(), true),
            None => (key, false),
        };
        if key.is_empty() || value.is_empty() {
            return Err(format!("line {}: empty key or value", number + 1));
        }
        settings.push(Setting {
            key: key.to_string(),
            value: value.to_string(),
            optional,
        });
    }
    Ok(settings)
}

/// A shipped profile by name.
pub fn profile(name: &str) -> Result<Vec<Setting>, String> {
    let (_, text) = PROFILES
        .iter()
        .find(|(known, _)| *known == name)
        .ok_or_else(|| {
            let names: Vec<&str> = PROFILES.iter().map(|(known, _)| *known).collect();
            format!("unknown profile '{name}' (profiles: {})", names.join(", "))
        })?;
    parse(text)
}

/// One change `apply` would make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: String,
    /// The file written (under the probe's roots).
    pub path: PathBuf,
    /// The current value, or None when the file does not exist on this machine.
    pub current: Option<String>,
    pub wanted: String,
}

impl Change {
    /// The shell command an operator would type for this change.
    pub fn command(&self) -> String {
        if self.key.starts_with('/') {
            format!("echo {} > {}", self.wanted, self.key)
        } else if self.wanted.contains(' ') {
            format!("sysctl -w {}=\"{}\"", self.key, self.wanted)
        } else {
            format!("sysctl -w {}={}", self.key, self.wanted)
        }
    }
}

/// Normalises a current value for comparison: whitespace runs become one space, and a
/// `[choice]` file (`always [madvise] never`) reads as its selected choice.
fn normalise(text: &str) -> String {
    let text = text.trim();
    if let (Some(start), Some(end)) = (text.find('['), text.find(']'))
        && start < end
    {
        return text[start + 1..end].to_string();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Settings a profile raises but never lowers: a machine with deeper queues or larger
/// socket buffers (compared by the last field, the maximum) is left as it is.
const AT_LEAST_KEYS: &[&str] = &[
    "net.core.somaxconn",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

fn last_number(value: &str) -> Option<u64> {
    value.split_whitespace().last()?.parse().ok()
}

/// The changes that bring the machine to `settings`: settings already in force are left
/// out; settings whose file is missing are kept with `current: None` (apply reports them),
/// except optional ones, which are left out too.
pub fn plan(probe: &Probe, settings: &[Setting]) -> Vec<Change> {
    settings
        .iter()
        .filter_map(|setting| {
            let path = match setting.key.strip_prefix("/sys/") {
                Some(relative) => probe.sys_root.join(relative),
                None => probe
                    .proc_root
                    .join("sys")
                    .join(setting.key.replace('.', "/")),
            };
            let current = std::fs::read_to_string(&path)
                .ok()
                .map(|text| normalise(&text));
            let wanted = normalise(&setting.value);
            let already_larger = AT_LEAST_KEYS.contains(&setting.key.as_str())
                && current
                    .as_deref()
                    .and_then(last_number)
                    .zip(last_number(&wanted))
                    .is_some_and(|(current, wanted)| current >= wanted);
            let absent_optional = setting.optional && current.is_none();
            (current.as_deref() != Some(wanted.as_str()) && !already_larger && !absent_optional)
                .then(|| Change {
                    key: setting.key.clone(),
                    path,
                    current,
                    wanted,
                })
        })
        .collect()
}

/// Writes every change in order; stops at the first failure with the file and reason.
pub fn apply(changes: &[Change]) -> Result<(), String> {
    for change in changes {
        if change.current.is_none() {
            return Err(format!(
                "{} does not exist on this machine (kernel without {}?); nothing after it was changed",
                change.path.display(),
                change.key
            ));
        }
        std::fs::write(&change.path, format!("{}\n", change.wanted)).map_err(|error| {
            let hint = match error.kind() {
                std::io::ErrorKind::PermissionDenied => " (run as root)",
                std::io::ErrorKind::ReadOnlyFilesystem => {
                    " (/proc/sys is read-only in this container)"
                }
                _ => "",
            };
            format!(
                "could not write {} to {}: {error}{hint}; nothing after it was changed",
                change.wanted,
                change.path.display()
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_tree(files: &[(&str, &str)]) -> (tempfile::TempDir, Probe) {
        let dir = tempfile::tempdir().expect("temp dir");
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        let probe = Probe {
            proc_root: dir.path().join("proc"),
            sys_root: dir.path().join("sys"),
        };
        (dir, probe)
    }

    #[test]
    fn shipped_profiles_parse_and_bad_lines_name_their_number() {
        for (name, _) in PROFILES {
            let settings = profile(name).expect("parses");
            assert!(
                settings
                    .iter()
                    .any(|setting| setting.key == "vm.swappiness"),
                "{name}"
            );
        }
        assert_eq!(
            parse("# ok\nvm.swappiness = 1\nnonsense\n"),
            Err("line 3: expected key = value, got 'nonsense'".into())
        );
        assert!(
            profile("fastest")
                .unwrap_err()
                .contains("throughput, latency")
        );
    }

    #[test]
    fn the_plan_holds_only_differences_and_apply_writes_them() {
        let (_dir, probe) = fake_tree(&[
            ("proc/sys/vm/swappiness", "60\n"),
            ("proc/sys/net/core/somaxconn", "8192\n"),
            ("proc/sys/net/ipv4/tcp_rmem", "4096\t131072\t6291456\n"),
            (
                "sys/kernel/mm/transparent_hugepage/enabled",
                "always [madvise] never\n",
            ),
        ]);
        let settings = parse(
            "vm.swappiness = 1\nnet.core.somaxconn = 4096\nnet.ipv4.tcp_rmem = 4096 131072 16777216\n\
             /sys/kernel/mm/transparent_hugepage/enabled = madvise\nnet.core.busy_poll = 50\n\
             ? /sys/module/haltpoll/parameters/guest_halt_poll_ns = 200000\n",
        )
        .expect("parses");
        let changes = plan(&probe, &settings);
        let summary: Vec<(String, Option<String>, String)> = changes
            .iter()
            .map(|change| {
                (
                    change.key.clone(),
                    change.current.clone(),
                    change.wanted.clone(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("vm.swappiness".into(), Some("60".into()), "1".into()),
                (
                    "net.ipv4.tcp_rmem".into(),
                    Some("4096 131072 6291456".into()),
                    "4096 131072 16777216".into()
                ),
                ("net.core.busy_poll".into(), None, "50".into()),
            ]
        );
        assert_eq!(
            changes[1].command(),
            "sysctl -w net.ipv4.tcp_rmem=\"4096 131072 16777216\""
        );
        let error = apply(&changes).unwrap_err();
        assert!(
            error.contains("busy_poll") && error.contains("does not exist"),
            "{error}"
        );
        // Changes before the missing file were written.
        assert_eq!(plan(&probe, &settings[..1]), vec![]);
        assert!(apply(&changes[..2]).is_ok());
        assert_eq!(plan(&probe, &settings[..4]), vec![]);
        // An optional key is left out where its file is missing (above) and planned
        // where it exists.
        let (_vm, vm_probe) =
            fake_tree(&[("sys/module/haltpoll/parameters/guest_halt_poll_ns", "0\n")]);
        let optional = &settings[5];
        assert!(optional.optional);
        let changes = plan(&vm_probe, std::slice::from_ref(optional));
        assert_eq!(changes.len(), 1);
        assert_eq!(
            changes[0].command(),
            "echo 200000 > /sys/module/haltpoll/parameters/guest_halt_poll_ns"
        );
    }
}
