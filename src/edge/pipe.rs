//! An in-process TCP-like stream: the stack's end is an [`UpstreamIo`], the
//! service's end a plain, non-blocking [`MemoryPeer`]. The VPC resolver
//! serves DNS over TCP on one (no host socket), and the memory lab's
//! services on others.
//!
//! Each direction is a bounded byte queue ([`PIPE_CAPACITY`]): a full queue
//! refuses writes with `WouldBlock`, as a socket's send buffer does, so the
//! relay's backpressure works here as on the host's network. EOF, half-close
//! and reset behave as on TCP: a writer that shuts its side gives the reader
//! `Ok(0)` once the queue is drained; a reset gives both sides
//! `ConnectionReset` at once. Either end may register a waker for when it
//! can read or write again; whatever the other end does that could change
//! that wakes it.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::edge::upstream::UpstreamIo;

/// Bytes each direction holds before writes block.
pub const PIPE_CAPACITY: usize = 256 << 10;

#[derive(Default)]
struct Direction {
    bytes: VecDeque<u8>,
    /// The writer shut its side (EOF once drained).
    shut: bool,
    /// The reader's waker, when it waits for bytes.
    reader: Option<Waker>,
    /// The writer's waker, when it waits for room.
    writer: Option<Waker>,
}

#[derive(Default)]
struct Pipe {
    to_service: Direction,
    to_client: Direction,
    reset: bool,
}

fn lock(p: &Mutex<Pipe>) -> MutexGuard<'_, Pipe> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

fn read(d: &mut Direction, reset: bool, buf: &mut [u8]) -> io::Result<usize> {
    if reset {
        return Err(io::ErrorKind::ConnectionReset.into());
    }
    if d.bytes.is_empty() {
        return if d.shut { Ok(0) } else { Err(io::ErrorKind::WouldBlock.into()) };
    }
    let n = buf.len().min(d.bytes.len());
    for (b, x) in buf.iter_mut().zip(d.bytes.drain(..n)) {
        *b = x;
    }
    Ok(n)
}

fn write(d: &mut Direction, reset: bool, buf: &[u8]) -> io::Result<usize> {
    if reset {
        return Err(io::ErrorKind::ConnectionReset.into());
    }
    if d.shut {
        return Err(io::ErrorKind::BrokenPipe.into());
    }
    let n = buf.len().min(PIPE_CAPACITY - d.bytes.len());
    if n == 0 && !buf.is_empty() {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    d.bytes.extend(&buf[..n]);
    Ok(n)
}

fn wake(waker: &mut Option<Waker>) {
    if let Some(w) = waker.take() {
        w.wake();
    }
}

fn wake_all(p: &mut Pipe) {
    for d in [&mut p.to_service, &mut p.to_client] {
        wake(&mut d.reader);
        wake(&mut d.writer);
    }
}

/// Ready to read `d`, or `cx`'s waker is registered as its reader.
fn poll_readable(d: &mut Direction, reset: bool, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    if reset || d.shut || !d.bytes.is_empty() {
        return Poll::Ready(Ok(()));
    }
    d.reader = Some(cx.waker().clone());
    Poll::Pending
}

/// Ready to write `d`, or `cx`'s waker is registered as its writer.
fn poll_writable(d: &mut Direction, reset: bool, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    if reset || d.bytes.len() < PIPE_CAPACITY {
        return Poll::Ready(Ok(()));
    }
    d.writer = Some(cx.waker().clone());
    Poll::Pending
}

/// A new pipe: the stack's end and the service's.
pub fn pipe() -> (MemoryStream, MemoryPeer) {
    let p = Arc::new(Mutex::new(Pipe::default()));
    (MemoryStream { pipe: p.clone(), reset_on_close: false.into() }, MemoryPeer { pipe: p })
}

/// The stack's end of a pipe.
pub struct MemoryStream {
    pipe: Arc<Mutex<Pipe>>,
    reset_on_close: std::sync::atomic::AtomicBool,
}

impl UpstreamIo for MemoryStream {
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let p = &mut *lock(&self.pipe);
        let n = read(&mut p.to_client, p.reset, buf)?;
        wake(&mut p.to_client.writer);
        Ok(n)
    }
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        let p = &mut *lock(&self.pipe);
        let n = write(&mut p.to_service, p.reset, buf)?;
        wake(&mut p.to_service.reader);
        Ok(n)
    }
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let p = &mut *lock(&self.pipe);
        poll_readable(&mut p.to_client, p.reset, cx)
    }
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let p = &mut *lock(&self.pipe);
        poll_writable(&mut p.to_service, p.reset, cx)
    }
    fn shutdown_write(&self) {
        let p = &mut *lock(&self.pipe);
        p.to_service.shut = true;
        wake(&mut p.to_service.reader);
    }
    fn reset_on_close(&self) {
        self.reset_on_close.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for MemoryStream {
    fn drop(&mut self) {
        let p = &mut *lock(&self.pipe);
        if self.reset_on_close.load(std::sync::atomic::Ordering::Relaxed) {
            p.reset = true;
            wake_all(p);
        } else {
            p.to_service.shut = true;
            wake(&mut p.to_service.reader);
        }
    }
}

/// The service's end of a pipe: non-blocking reads and writes, for an
/// in-process service (or a test) to drive.
pub struct MemoryPeer {
    pipe: Arc<Mutex<Pipe>>,
}

impl MemoryPeer {
    /// Reads what the client sent: `WouldBlock` if nothing yet, `Ok(0)` at its EOF.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let p = &mut *lock(&self.pipe);
        let n = read(&mut p.to_service, p.reset, buf)?;
        wake(&mut p.to_service.writer);
        Ok(n)
    }
    /// Writes toward the client what fits now.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let p = &mut *lock(&self.pipe);
        let n = write(&mut p.to_client, p.reset, buf)?;
        wake(&mut p.to_client.reader);
        Ok(n)
    }
    /// Ready to read, or the waker in `cx` is registered for when it is.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let p = &mut *lock(&self.pipe);
        poll_readable(&mut p.to_service, p.reset, cx)
    }
    /// Ready to write, or the waker in `cx` is registered for when it is.
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let p = &mut *lock(&self.pipe);
        poll_writable(&mut p.to_client, p.reset, cx)
    }
    /// Sends EOF toward the client.
    pub fn shutdown(&mut self) {
        let p = &mut *lock(&self.pipe);
        p.to_client.shut = true;
        wake(&mut p.to_client.reader);
    }
    /// Resets the connection, both ways.
    pub fn reset(&mut self) {
        let p = &mut *lock(&self.pipe);
        p.reset = true;
        wake_all(p);
    }
    /// The stack's end is gone or reset it, and everything it sent was read.
    pub fn is_closed(&self) -> bool {
        let p = lock(&self.pipe);
        p.reset || (p.to_service.shut && p.to_service.bytes.is_empty())
    }
    /// The stack reset the connection (the client's RST, relayed).
    pub fn was_reset(&self) -> bool {
        lock(&self.pipe).reset
    }
}

impl Drop for MemoryPeer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl io::Read for MemoryPeer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        MemoryPeer::read(self, buf)
    }
}

impl io::Write for MemoryPeer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        MemoryPeer::write(self, buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_eof_and_reset_travel_as_on_tcp() {
        let (stack, mut peer) = pipe();
        assert_eq!(stack.try_write(b"hello").unwrap(), 5);
        let mut buf = [0u8; 16];
        assert_eq!(peer.read(&mut buf).unwrap(), 5);
        assert_eq!(peer.read(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        stack.shutdown_write();
        assert_eq!(peer.read(&mut buf).unwrap(), 0, "EOF after the client's FIN");
        assert_eq!(peer.write(b"back").unwrap(), 4, "half-closed: the other way still flows");
        assert_eq!(stack.try_read(&mut buf).unwrap(), 4);
        peer.reset();
        assert_eq!(stack.try_read(&mut buf).unwrap_err().kind(), io::ErrorKind::ConnectionReset);
    }

    #[test]
    fn a_full_direction_blocks_the_writer() {
        let (stack, mut peer) = pipe();
        let big = vec![7u8; PIPE_CAPACITY + 10];
        assert_eq!(stack.try_write(&big).unwrap(), PIPE_CAPACITY);
        assert_eq!(stack.try_write(b"x").unwrap_err().kind(), io::ErrorKind::WouldBlock);
        let mut buf = vec![0u8; 100];
        peer.read(&mut buf).unwrap();
        assert_eq!(stack.try_write(&big).unwrap(), 100);
    }

    #[test]
    fn each_end_is_woken_by_what_the_other_does() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::task::Wake;
        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let (stack, mut peer) = pipe();
        assert!(peer.poll_read_ready(&mut cx).is_pending());
        stack.try_write(b"query").unwrap();
        assert_eq!(count.0.load(Ordering::Relaxed), 1, "the service is woken by the client's bytes");
        assert!(peer.poll_read_ready(&mut cx).is_ready());
        assert!(stack.poll_read_ready(&mut cx).is_pending());
        peer.write(b"answer").unwrap();
        assert_eq!(count.0.load(Ordering::Relaxed), 2, "the stack is woken by the answer");
        assert!(peer.poll_read_ready(&mut cx).is_ready());
        let mut buf = [0u8; 8];
        peer.read(&mut buf).unwrap();
        assert!(peer.poll_read_ready(&mut cx).is_pending());
        drop(stack);
        assert_eq!(count.0.load(Ordering::Relaxed), 3, "and by its close");
        assert_eq!(peer.read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn reset_on_close_resets_the_peer() {
        let (stack, peer) = pipe();
        stack.reset_on_close();
        drop(stack);
        assert!(peer.was_reset());
        let (stack, mut peer) = pipe();
        drop(stack);
        let mut buf = [0u8; 4];
        assert_eq!(peer.read(&mut buf).unwrap(), 0, "a plain close is EOF");
        assert!(!peer.was_reset());
    }
}
