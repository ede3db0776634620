//! Credentials: the real, effective and saved user and group ids, which
//! start as the boot identity's and change by Linux's rules (privileged
//! means effective uid 0; the isle models no capabilities). They are what
//! the program is told; the host opens files as the monitor whatever they
//! say.

use atoll_abi::linux::errno::EPERM;
use spin::Mutex;

use super::SysResult;
use crate::arch::x86_64::user;
use crate::boot_info;

/// "Leave this id as it is" (-1 as a uid_t).
const UNCHANGED: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Ids {
    real: u32,
    effective: u32,
    saved: u32,
}

impl Ids {
    fn holds(&self, id: u32) -> bool {
        id == self.real || id == self.effective || id == self.saved
    }
}

/// (user ids, group ids); `None` until first used.
static CREDENTIALS: Mutex<Option<(Ids, Ids)>> = Mutex::new(None);

fn with<T>(action: impl FnOnce(&mut Ids, &mut Ids) -> T) -> T {
    let mut credentials = CREDENTIALS.lock();
    let (users, groups) = credentials.get_or_insert_with(|| {
        let me = &boot_info().identity;
        (
            Ids {
                real: me.uid,
                effective: me.euid,
                saved: me.euid,
            },
            Ids {
                real: me.gid,
                effective: me.egid,
                saved: me.egid,
            },
        )
    });
    action(users, groups)
}

pub fn getuid() -> SysResult {
    Ok(u64::from(with(|users, _| users.real)))
}

pub fn geteuid() -> SysResult {
    Ok(u64::from(with(|users, _| users.effective)))
}

pub fn getgid() -> SysResult {
    Ok(u64::from(with(|_, groups| groups.real)))
}

pub fn getegid() -> SysResult {
    Ok(u64::from(with(|_, groups| groups.effective)))
}

/// setuid / setgid: all three ids when privileged, else only the
/// effective one, to the real or saved id.
pub fn set_id(id: u64, group: bool) -> SysResult {
    let id = id as u32;
    with(|users, groups| {
        let privileged = users.effective == 0;
        let ids = if group { groups } else { users };
        if privileged {
            *ids = Ids {
                real: id,
                effective: id,
                saved: id,
            };
        } else if id == ids.real || id == ids.saved {
            ids.effective = id;
        } else {
            return Err(EPERM);
        }
        Ok(0)
    })
}

/// setreuid / setregid: the real id may become the real or effective one,
/// the effective id any of the three (any id at all when privileged); the
/// saved id follows the new effective one when the real id is set or the
/// effective one moves off the old real id.
pub fn set_real_effective(real: u64, effective: u64, group: bool) -> SysResult {
    let (real, effective) = (real as u32, effective as u32);
    with(|users, groups| {
        let privileged = users.effective == 0;
        let ids = if group { groups } else { users };
        let old = *ids;
        if !privileged
            && (real != UNCHANGED && real != old.real && real != old.effective
                || effective != UNCHANGED && !old.holds(effective))
        {
            return Err(EPERM);
        }
        if real != UNCHANGED {
            ids.real = real;
        }
        if effective != UNCHANGED {
            ids.effective = effective;
        }
        if real != UNCHANGED || effective != UNCHANGED && effective != old.real {
            ids.saved = ids.effective;
        }
        Ok(0)
    })
}

/// setresuid / setresgid: unprivileged, each new id must be one of the
/// current three.
pub fn set_real_effective_saved(real: u64, effective: u64, saved: u64, group: bool) -> SysResult {
    let new = [real as u32, effective as u32, saved as u32];
    with(|users, groups| {
        let privileged = users.effective == 0;
        let ids = if group { groups } else { users };
        if !privileged && new.iter().any(|&id| id != UNCHANGED && !ids.holds(id)) {
            return Err(EPERM);
        }
        for (slot, id) in [&mut ids.real, &mut ids.effective, &mut ids.saved]
            .into_iter()
            .zip(new)
        {
            if id != UNCHANGED {
                *slot = id;
            }
        }
        Ok(0)
    })
}

/// getresuid / getresgid.
pub fn get_real_effective_saved(real: u64, effective: u64, saved: u64, group: bool) -> SysResult {
    let ids = with(|users, groups| if group { *groups } else { *users });
    user::write(real, ids.real)?;
    user::write(effective, ids.effective)?;
    user::write(saved, ids.saved)?;
    Ok(0)
}
