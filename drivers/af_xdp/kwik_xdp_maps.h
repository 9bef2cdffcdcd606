/* The layout kwik_xdp.bpf.c and its loader (xdp_program.cpp) share: map sizes, the key and
 * value types and the counter indices. C, included by the BPF program and by C++; no code. */
#pragma once

#include <linux/types.h>

#define KWIK_XDP_MAX_QUEUES 256   /* xsks_map: rx queue indices a socket can be bound to */
#define KWIK_XDP_MAX_PORTS 8      /* engine::max_port_kwik_ports */
#define KWIK_XDP_MAX_ADDRESSES 16 /* engine::max_port_addresses */

/* An IPv6 address, or an IPv4 one as IPv4-mapped IPv6 (::ffff:a.b.c.d), network order. */
struct kwik_xdp_address {
    __u8 bytes[16];
};

struct kwik_xdp_config {
    __u32 address_count; /* 0: any destination address of the port is Kwik's */
    __u32 reserved;
};

/* kwik_counters indices: what happened to a frame. */
enum kwik_xdp_verdict {
    KWIK_XDP_REDIRECTED = 0,      /* into the queue's AF_XDP socket */
    KWIK_XDP_NO_SOCKET = 1,       /* Kwik, but its rx queue has no socket: to the kernel */
    KWIK_XDP_NOT_IP = 2,          /* ARP, LLDP, ...: to the kernel */
    KWIK_XDP_NOT_UDP = 3,         /* ICMP, TCP, IPv6 extension headers, ...: to the kernel */
    KWIK_XDP_NOT_KWIK_PORT = 4,   /* UDP to another port: to the kernel */
    KWIK_XDP_NOT_KWIK_ADDRESS = 5, /* a Kwik port, another address: to the kernel */
    KWIK_XDP_FRAGMENT = 6,        /* IPv4 fragment: to the kernel */
    KWIK_XDP_TRUNCATED = 7,       /* shorter than its headers: to the kernel */
    KWIK_XDP_VERDICTS = 8,
};
