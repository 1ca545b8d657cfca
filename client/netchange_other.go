//go:build !linux

package client

// watchNetwork has no signal of a network change to offer on this
// platform: the client relies on its redial interval.
func watchNetwork() (changed <-chan struct{}, stop func(), err error) {
	return nil, func() {}, nil
}
