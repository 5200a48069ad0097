package main

import (
	"math"
	"testing"
)

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		in            []float64
		med, min, max float64
	}{
		{[]float64{3, 1, 2}, 2, 1, 3},
		{[]float64{4, 1, 3, 2}, 2.5, 1, 4},
		{[]float64{7}, 7, 7, 7},
	} {
		s := summarize(tc.in)
		if s.Median != tc.med || s.Min != tc.min || s.Max != tc.max || s.N != len(tc.in) {
			t.Errorf("summarize(%v) = %+v, want median %v min %v max %v", tc.in, s, tc.med, tc.min, tc.max)
		}
	}
	if s := summarize(nil); !math.IsNaN(s.Median) || s.N != 0 {
		t.Errorf("summarize(nil) = %+v, want NaN median", s)
	}
}

func TestRatioPerRound(t *testing.T) {
	// Round 2 is slow for both ways (machine load): its ratio stays 2.
	a := []float64{2, 20, 4}
	b := []float64{1, 10, 2}
	med, lo, hi := ratio(a, b)
	if med != 2 || lo != 2 || hi != 2 {
		t.Errorf("ratio = %v [%v, %v], want 2 [2, 2]", med, lo, hi)
	}
	med, lo, hi = ratio([]float64{3, 6}, []float64{1, 4})
	if med != 4.5/2.5 || lo != 1.5 || hi != 3 {
		t.Errorf("ratio = %v [%v, %v], want 1.8 [1.5, 3]", med, lo, hi)
	}
}
