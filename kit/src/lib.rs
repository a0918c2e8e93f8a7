//! # The workshop's kit: what steps 05 and later are made of
//!
//! The article ends at step04. The steps after it each add one idea to the
//! one before, and a learner reads each idea in full in one place: its module
//! here. A step's own `main.rs` is then short: its options, and the order in
//! which it calls what earlier steps taught and what it adds.
//!
//! - [`article`] is step04 itself: its `src/main.rs`, compiled a second time
//!   as a module, so that later steps call the very functions the article's
//!   program showed, never a copy of them.
//! - [`pivot_root`] (step05): the rootfs becomes the mount namespace's root,
//!   and the host's tree is detached: chroot's escape is closed.
//! - [`dev`] (step05): a /dev of the container's own.
//! - [`init`] (step06): the container's PID 1 is an init of ours, which
//!   reaps zombies, forwards signals and dies with the runtime.
//! - [`enter`] (step06): run a second command in a running container, as
//!   `docker exec` does.
//! - [`overlay`] (step07): the rootfs becomes a read-only image under an
//!   overlay, and each container writes to a layer of its own.
//! - [`cgroup`] (step08): limits on memory, processes and CPU time, enforced
//!   by the kernel through a cgroup made for each container.

/// Step04, the article's container: (1) new namespaces, (2) private mounts,
/// (3) chroot, (4) fork, (5) proc, (6) exec. Its `main`, `Cli` and `run` are
/// for its own binary; later steps call its functions in an order of their own.
#[allow(dead_code)]
#[path = "../../step04-full-demo/src/main.rs"]
pub mod article;

pub mod cgroup;
pub mod dev;
pub mod enter;
pub mod init;
pub mod overlay;
pub mod pivot_root;
