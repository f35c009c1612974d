//go:build !unix

package loadgen

import "time"

type cpuSample struct{}

func cpuTime() cpuSample { return cpuSample{} }

func (c cpuSample) sub(cpuSample, time.Duration) CPU { return CPU{} }
