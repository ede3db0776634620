//! Images: the local OCI store (`store`) and its commands (`images`),
//! registries (`registry`: push, pull, login, search), single-file
//! `.isle` images (`pack`), files layers (`rootfs`), and the container
//! images docker runs (`oci`: their config, platform and root filesystem).

pub(crate) mod images;
pub(crate) mod oci;
pub(crate) mod pack;
pub(crate) mod registry;
pub(crate) mod rootfs;
pub(crate) mod store;
