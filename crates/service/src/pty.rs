//! The two raw-fd operations the terminal needs.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Take ownership of an fd received with SCM_RIGHTS.
pub fn own_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the kernel just installed `fd` in our table for this message;
    // nothing else refers to it, so this is its only owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// TIOCSWINSZ on the pty master.
pub fn set_size(master: &OwnedFd, width: u32, height: u32) -> std::io::Result<()> {
    let ws = libc::winsize {
        ws_row: height.min(u16::MAX as u32) as u16,
        ws_col: width.min(u16::MAX as u32) as u16,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: `master` is an open fd for the call's duration and `ws` is a
    // valid winsize the kernel only reads.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
