package client

// WatchNetwork is the platform's network-change watcher, for tests that
// open it inside a network namespace of their own.
var WatchNetwork = watchNetwork

// SetNetworkWatch makes a Client with opts watch for network changes with
// watch instead of the platform's watcher.
func SetNetworkWatch(opts *Options, watch func() (<-chan struct{}, func(), error)) {
	opts.watchNetwork = watch
}
