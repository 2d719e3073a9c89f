//! Replicas: a copy of a volume on another real volume, here or on another SAN, brought in
//! sync by a background copy while the volume stays in use, then mirrored synchronously.
