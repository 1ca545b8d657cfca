package vt

import "testing"

func BenchmarkTmpPlainSB0(b *testing.B) {
	data := plainLines()
	term := New(24, 80, Options{Scrollback: 0})
	term.Write(data)
	b.SetBytes(int64(len(data)))
	cpu := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		term.Write(data)
	}
	b.StopTimer()
	reportCPURate(b, cpu, int64(len(data))*int64(b.N))
}
