//! One connection per busy gateway: a fleet of 1,000 needs more descriptors than the usual
//! soft limit of 1,024 allows, so the soft limit is raised towards the hard one at start.

/// Raise the soft RLIMIT_NOFILE to at least `needed` (bounded by the hard limit). Returns
/// the limit now in force, or a message saying why it stays below `needed`.
#[cfg(unix)]
// rlim_t is u64 on Linux, not on every unix: the casts are for the others.
#[allow(clippy::unnecessary_cast)]
pub fn raise_open_files(needed: u64) -> Result<u64, String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(format!(
            "cannot read the open files limit: {}",
            std::io::Error::last_os_error()
        ));
    }
    let current = lim.rlim_cur as u64;
    if current >= needed {
        return Ok(current);
    }
    let want = needed.min(lim.rlim_max as u64);
    lim.rlim_cur = want as libc::rlim_t;
    // SAFETY: as above; setrlimit reads the struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(format!(
            "cannot raise the open files limit from {current} to {want}: {}",
            std::io::Error::last_os_error()
        ));
    }
    if want < needed {
        return Err(format!(
            "open files limit is {want} (the hard limit), {needed} wanted: some connections may fail (ulimit -Hn)"
        ));
    }
    Ok(want)
}

#[cfg(not(unix))]
pub fn raise_open_files(_needed: u64) -> Result<u64, String> {
    Ok(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_we_already_have_is_kept() {
        let now = raise_open_files(16).unwrap();
        assert!(now >= 16);
        assert_eq!(raise_open_files(16).unwrap(), now);
    }
}
