// Package deploy holds hose's deployment files and the tests that run them.
//
// systemd/ has the units a host installs (hose-broker.service, the
// templated hose-worker@.service, hose-cluster.service) and env/ the
// environment files they read from /etc/hose. The tests parse those files
// and start exactly the commands systemd would: a CURVE-protected broker,
// workers and a client in four network namespaces joined by a bridge,
// talking over real TCP (see README.md, "Deploying across hosts").
package deploy
