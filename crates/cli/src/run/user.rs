//! `-u USER[:GROUP]`: names looked up in the isle's own /etc/passwd and
//! /etc/group (an image's, or the host's), numbers taken as they are.

use atoll_vmm::sandbox::Files;

use crate::error::CliError;

/// The (uid, gid) `-u` names: a user without a group takes the primary
/// group its passwd entry gives, else group 0, as docker does.
pub(super) fn resolve_user(files: &Files, text: &str) -> Result<(u32, u32), CliError> {
    let (user, group) = match text.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (text, None),
    };
    if user.is_empty() || group.is_some_and(str::is_empty) {
        return Err(CliError::usage(format!(
            "invalid -u '{text}': use USER[:GROUP], names or numbers"
        )));
    }
    let passwd = table(files, "/etc/passwd");
    let entry = passwd.iter().find(|fields| {
        fields[0] == user
            || user
                .parse::<u32>()
                .is_ok_and(|uid| fields[2] == uid.to_string())
    });
    let uid = match user.parse::<u32>() {
        Ok(uid) => uid,
        Err(_) => entry
            .and_then(|fields| fields[2].parse().ok())
            .ok_or_else(|| {
                CliError::usage(format!(
                    "-u {text}: no user '{user}' in the isle's /etc/passwd: give a uid"
                ))
            })?,
    };
    let gid = match group {
        None => entry.and_then(|fields| fields[3].parse().ok()).unwrap_or(0),
        Some(group) => match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => table(files, "/etc/group")
                .iter()
                .find(|fields| fields[0] == group)
                .and_then(|fields| fields[2].parse().ok())
                .ok_or_else(|| {
                    CliError::usage(format!(
                        "-u {text}: no group '{group}' in the isle's /etc/group: give a gid"
                    ))
                })?,
        },
    };
    Ok((uid, gid))
}

/// The colon-separated lines of a passwd-style file with at least 4
/// fields; none if the isle has no such file.
fn table(files: &Files, path: &str) -> Vec<Vec<String>> {
    let bytes = files.read_file(path, 16 << 20).unwrap_or_default();
    String::from_utf8_lossy(&bytes)
        .lines()
        .map(|line| line.split(':').map(str::to_string).collect::<Vec<_>>())
        .filter(|fields| fields.len() >= 4)
        .collect()
}
