// Package load holds the load run (`make load`): concurrent signed clients
// against the local runner's API for a fixed time, then every event and
// email accounted for. It is a test that skips unless LOAD_DURATION is set.
package load
