package main

import (
	"math"
	"slices"
	"time"
)

// spread is a figure over the measured rounds: its median and its range.
type spread struct {
	median, min, max float64
	n                int // rounds with a value
}

// spreadOf summarises per-round values; NaN marks a round without a value.
func spreadOf(vals []float64) spread {
	var ok []float64
	for _, v := range vals {
		if !math.IsNaN(v) {
			ok = append(ok, v)
		}
	}
	if len(ok) == 0 {
		return spread{median: math.NaN(), min: math.NaN(), max: math.NaN()}
	}
	slices.Sort(ok)
	return spread{median: median(ok), min: ok[0], max: ok[len(ok)-1], n: len(ok)}
}

// median of sorted values.
func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// ratios divides each round's value by the bare PTY's value of the same
// round, so that a ratio never mixes figures from different rounds.
func ratios(vals, bare []float64) []float64 {
	out := make([]float64, len(vals))
	for r := range vals {
		out[r] = math.NaN()
		if r < len(bare) && bare[r] != 0 && !math.IsNaN(bare[r]) {
			out[r] = vals[r] / bare[r]
		}
	}
	return out
}

// percentile returns the p-th percentile (0 < p <= 100) of durations by the
// nearest-rank method: the smallest sample with at least p% of the samples
// at or below it. With 200 samples, p99 is the second largest.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// nanRounds returns n NaNs: a row's values before any round filled them.
func nanRounds(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = math.NaN()
	}
	return out
}
