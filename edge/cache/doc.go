// Package cache is the edge's chunk-addressed object store: a memory tier
// (golang-lru/v2, bounded in bytes) over a disk tier (bounded in bytes,
// survives restarts), with in-flight fills that many readers can stream
// from while the first one writes (request collapsing).
//
// The store knows objects, versions and chunks, not HTTP: the HTTP layer
// (package edge) keeps its response metadata in ObjectInfo.HTTP as an opaque
// blob and decides freshness itself.
//
// Units:
//   - An object is one cached response body, named by its key string (site,
//     path, normalized query and Vary values, built by the HTTP layer). Its ID
//     is xxhash64(key).
//   - A version is one fill of an object; a refetch that changes the body
//     makes a new version, so readers of the old one are never corrupted.
//   - A chunk is ChunkBytes of a version (the last one may be shorter). Every
//     chunk carries the SHA-256 of its bytes, computed while filling; the
//     list is the peer-assist manifest and the disk tier verifies it on read.
//
// Crash safety: a chunk or object that was only partly written is never
// served after a crash at any moment (kill -9); see disk.go.
package cache
