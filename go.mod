module github.com/hose-project/hose

go 1.26.8

require (
	github.com/HdrHistogram/hdrhistogram-go v1.4.0 // indirect
	github.com/pebbe/zmq4 v1.4.0 // indirect
)
