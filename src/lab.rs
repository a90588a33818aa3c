//! A network-namespace lab: two namespaces joined by a veth pair, addresses from 198.18.0.0/15.
