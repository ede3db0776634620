//! Images: the local OCI store (`store`) and its commands (`images`),
//! registries (`registry`: push, pull, login, search), single-file
//! `.isle` images (`pack`) and files layers (`rootfs`).

pub(crate) mod images;
pub(crate) mod pack;
pub(crate) mod registry;
pub(crate) mod rootfs;
pub(crate) mod store;
