package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/reconnectingpty/reconnectingpty/client"
)

// predictFlags are the command line's prediction settings.
type predictFlags struct {
	mode        *string
	thresholdMS *int
}

func addPredictFlags(fs *flag.FlagSet) predictFlags {
	return predictFlags{
		mode: fs.String("predict", string(predictAuto),
			"predictive echo: auto (while the round trip is at least -predict-ms), on or off"),
		thresholdMS: fs.Int("predict-ms", int(defaultPredictThreshold/time.Millisecond),
			"the round trip in milliseconds from which -predict auto predicts"),
	}
}

// check validates the flags.
func (f predictFlags) check() error {
	switch predictMode(*f.mode) {
	case predictAuto, predictOn, predictOff:
	default:
		return fmt.Errorf("-predict %q: want auto, on or off", *f.mode)
	}
	if *f.thresholdMS < 0 {
		return fmt.Errorf("-predict-ms %d: want zero or more", *f.thresholdMS)
	}
	return nil
}

// startPredicting sets up prediction for a session whose input and output
// are a terminal of rows x cols; without one (or watching, or off) there
// is nothing to predict on.
func (s *session) startPredicting(f predictFlags, c *client.Client, inIsTerm bool, rows, cols uint16) {
	if s.view || !inIsTerm || !s.outIsTerm || rows == 0 || cols == 0 || predictMode(*f.mode) == predictOff {
		return
	}
	// Under the output lock: the client's goroutine may be drawing the
	// status line already.
	s.outMu.Lock()
	defer s.outMu.Unlock()
	s.pred = newPredictor(predictMode(*f.mode), time.Duration(*f.thresholdMS)*time.Millisecond, int(rows), int(cols), func() time.Duration {
		return c.Link().RTT
	})
}

// stopPredicting makes the predictor draw no more guesses; those shown go
// with the next write. outMu must be held.
func (s *session) stopPredicting() {
	if s.pred != nil {
		s.pred.stop()
	}
}

// writeOut writes session output (or bytes of rpty's own that change the
// screen as output would) to the terminal, through the predictor when
// there is one. outMu must be held.
func (s *session) writeOut(p []byte) (int, error) {
	s.modes.scan(p)
	if s.pred == nil {
		return s.out.Write(p)
	}
	if _, err := s.out.Write(s.pred.output(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// predictTyped draws the guesses for keys about to be sent.
func (s *session) predictTyped(keys []byte) {
	if s.pred == nil {
		return
	}
	s.outMu.Lock()
	defer s.outMu.Unlock()
	if b := s.pred.typed(keys); len(b) > 0 {
		_, _ = s.out.Write(b)
	}
}

// predictResize follows a change of the terminal's size.
func (s *session) predictResize(rows, cols uint16) {
	if s.pred == nil {
		return
	}
	s.outMu.Lock()
	defer s.outMu.Unlock()
	if b := s.pred.resize(int(rows), int(cols)); len(b) > 0 {
		_, _ = s.out.Write(b)
	}
}

// expireGuesses takes back, every quarter second until stop is closed,
// guesses whose echo is overdue while no output comes.
func (s *session) expireGuesses(stop <-chan struct{}) {
	tk := time.NewTicker(250 * time.Millisecond)
	defer tk.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tk.C:
			s.outMu.Lock()
			if b := s.pred.tick(); len(b) > 0 {
				_, _ = s.out.Write(b)
			}
			s.outMu.Unlock()
		}
	}
}
