//! The ENI: a TUN device created inside the VPC namespace, read and written from the host's.
//!
//! tun-tap opens `/dev/net/tun` with `IFF_TUN | IFF_NO_PI` on a thread that
//! has entered the namespace, so the netdev lives there; the fd keeps working
//! from any namespace. The device is not persistent: when the fd closes (exit,
//! even `kill -9`) the kernel removes it and its routes.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use tokio::io::unix::AsyncFd;
use tun_tap::{Iface, Mode};

use crate::netns::{self, NetnsError};

/// Errors creating the ENI, each naming the step.
#[derive(Debug, thiserror::Error)]
pub enum TunError {
    /// Entering the namespace failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// `/dev/net/tun` or `TUNSETIFF` failed.
    #[error("cannot create TUN device {name} in namespace {netns}: {source}")]
    Open {
        /// Device name.
        name: String,
        /// Namespace.
        netns: String,
        /// The OS error.
        source: io::Error,
    },
    /// Making the fd non-blocking or registering it with tokio failed.
    #[error("TUN device {name}: {source}")]
    Register {
        /// Device name.
        name: String,
        /// The OS error.
        source: io::Error,
    },
}

/// The TUN device, non-blocking and registered with tokio.
pub struct Tun {
    fd: AsyncFd<Iface>,
    name: String,
}

impl Tun {
    /// Creates TUN `name` inside namespace `netns` with `mtu`, link up, no addresses.
    pub fn create(netns: &str, name: &str, mtu: u32) -> Result<Tun, TunError> {
        let dev = name.to_string();
        let iface = netns::run_in(netns, move || Iface::without_packet_info(&dev, Mode::Tun))?
            .map_err(|source| TunError::Open { name: name.into(), netns: netns.into(), source })?;
        let reg = |source| TunError::Register { name: name.into(), source };
        set_nonblocking(iface.as_raw_fd()).map_err(reg)?;
        // SAFETY: the fd belongs to `iface`, which the AsyncFd owns, so it stays
        // open for as long as it is registered.
        let fd = unsafe { AsyncFd::register_with_interest(iface, tokio::io::Interest::READABLE) }
            .map_err(|e| reg(e.into_parts().1))?;
        netns::ip(&["-n", netns, "link", "set", "dev", name, "mtu", &mtu.to_string(), "up"])?;
        Ok(Tun { fd, name: name.to_string() })
    }

    /// Device name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw fd, for non-blocking reads and writes by the stack's device.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.get_ref().as_raw_fd()
    }

    /// Waits until the device may have a packet to read. The caller clears
    /// readiness *before* draining the fd to `EAGAIN`, so no edge is lost.
    pub async fn readable(&self) -> io::Result<tokio::io::unix::AsyncFdReadyGuard<'_, Iface>> {
        self.fd.readable().await
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a valid fd we own.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads one packet into `buf` without blocking: `Ok(None)` on `EAGAIN`.
pub fn read_packet(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: buf is valid for buf.len() bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n >= 0 {
        return Ok(Some(n as usize));
    }
    let e = io::Error::last_os_error();
    match e.kind() {
        io::ErrorKind::WouldBlock => Ok(None),
        io::ErrorKind::Interrupted => read_packet(fd, buf),
        _ => Err(e),
    }
}

/// Writes one packet. A TUN write does not block in practice (the kernel
/// queues it on the netdev backlog, dropping when that is full, as a wire would).
pub fn write_packet(fd: RawFd, pkt: &[u8]) -> io::Result<()> {
    loop {
        // SAFETY: pkt is valid for pkt.len() bytes.
        let n = unsafe { libc::write(fd, pkt.as_ptr().cast(), pkt.len()) };
        if n >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
