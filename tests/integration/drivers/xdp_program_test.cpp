// Kwik's XDP program and its loader (drivers/af_xdp/kwik_xdp.bpf.c, xdp_program.hpp) in the
// kernel: the test moves itself into a network namespace of its own (unshare), makes a veth pair
// there, loads the build tree's kwik_xdp.o with libbpf and attaches it; crafted frames run through
// BPF_PROG_TEST_RUN (table-driven: Kwik UDP over IPv4, IPv6 and VLAN, other ports and addresses,
// TCP, ARP, ICMP, IPv4 fragments, truncated frames) and their verdicts and the per-verdict
// counters are asserted. An AF_XDP socket bound to queue 0 (libxdp's xsk API, no program load)
// turns the Kwik verdict from "no socket, to the kernel" into XDP_REDIRECT. Foreign programs are
// never detached without force. Needs root (CAP_BPF, CAP_NET_ADMIN): skipped otherwise.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <linux/if_link.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/xsk.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "drivers/af_xdp/xdp_program.hpp"

#ifndef KWIK_XDP_BUILD_OBJECT
#error "KWIK_XDP_BUILD_OBJECT: the build tree's kwik_xdp.o"
#endif

namespace {

namespace drivers = kwik::drivers;
using bytes = std::vector<std::uint8_t>;

constexpr const char* iface = "kxdp0";
constexpr const char* peer = "kxdp1";
bool g_ready = false;
std::string g_why_not;

// A namespace of the process's own: the veth pair (and any program attached to it) goes away
// with the process, whatever way it ends.
class netns_environment : public ::testing::Environment {
public:
    void SetUp() override {
        if (geteuid() != 0) {
            g_why_not = "needs root (CAP_BPF, CAP_NET_ADMIN)";
            return;
        }
        if (unshare(CLONE_NEWNET) != 0) {
            g_why_not = std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno);
            return;
        }
        const std::string cmd = std::string("ip link add ") + iface + " type veth peer name " + peer + " && ip link set " +
                                iface + " up && ip link set " + peer + " up";
        if (std::system(cmd.c_str()) != 0) {
            g_why_not = "cannot create a veth pair: " + cmd;
            return;
        }
        g_ready = true;
    }
};

#define REQUIRE_NETNS()                                                                                                 \
    do {                                                                                                               \
        if (!g_ready) {                                                                                                \
            GTEST_SKIP() << g_why_not;                                                                                 \
        }                                                                                                              \
    } while (0)

// ---- frames -------------------------------------------------------------------------------

struct frame_spec {
    std::uint16_t vlan_tpid = 0; // 0x8100 / 0x88a8: one tag
    int ip_version = 4;          // 4, 6; 0: ARP
    std::uint8_t protocol = 17;
    const char* dst = "10.0.0.1";
    std::uint16_t dst_port = 7707;
    std::uint8_t ihl = 5;
    std::uint16_t frag = 0; // IPv4 flags + offset, host order
    std::size_t truncate_to = 0;
};

void put16(bytes& b, std::uint16_t v) {
    b.push_back(static_cast<std::uint8_t>(v >> 8));
    b.push_back(static_cast<std::uint8_t>(v));
}

bytes make_frame(const frame_spec& s) {
    bytes f = {0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02};
    if (s.vlan_tpid != 0) {
        put16(f, s.vlan_tpid);
        put16(f, 42);
    }
    if (s.ip_version == 0) {
        put16(f, 0x0806);
        f.resize(f.size() + 28, 0);
        return f;
    }
    put16(f, s.ip_version == 4 ? 0x0800 : 0x86dd);
    const std::size_t l4_len = s.protocol == 17 ? 8 + 32 : 20 + 32;
    if (s.ip_version == 4) {
        f.push_back(static_cast<std::uint8_t>(0x40 | s.ihl));
        f.push_back(0);
        put16(f, static_cast<std::uint16_t>(s.ihl * 4 + l4_len));
        put16(f, 1);
        put16(f, s.frag);
        f.push_back(64);
        f.push_back(s.protocol);
        put16(f, 0);
        f.insert(f.end(), {10, 0, 0, 2});
        std::uint8_t dst[4];
        inet_pton(AF_INET, s.dst, dst);
        f.insert(f.end(), dst, dst + 4);
        f.resize(f.size() + (s.ihl - 5) * 4, 1); // options (NOPs)
    } else {
        f.insert(f.end(), {0x60, 0, 0, 0});
        put16(f, static_cast<std::uint16_t>(l4_len));
        f.push_back(s.protocol);
        f.push_back(64);
        std::uint8_t src[16];
        std::uint8_t dst[16];
        inet_pton(AF_INET6, "fd00::2", src);
        inet_pton(AF_INET6, s.dst, dst);
        f.insert(f.end(), src, src + 16);
        f.insert(f.end(), dst, dst + 16);
    }
    put16(f, 40000); // source port (UDP and TCP alike)
    put16(f, s.dst_port);
    f.resize(f.size() + l4_len - 4, 0x5a);
    if (s.truncate_to != 0) {
        f.resize(s.truncate_to);
    }
    return f;
}

// One run of the program over a frame: its XDP action.
int run(int prog_fd, const bytes& frame) {
    bytes out(frame.size() + 256);
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    opts.data_in = frame.data();
    opts.data_size_in = static_cast<std::uint32_t>(frame.size());
    opts.data_out = out.data();
    opts.data_size_out = static_cast<std::uint32_t>(out.size());
    opts.repeat = 1;
    const int r = bpf_prog_test_run_opts(prog_fd, &opts);
    EXPECT_EQ(r, 0) << "bpf_prog_test_run_opts: " << std::strerror(-r);
    return static_cast<int>(opts.retval);
}

struct verdict_case {
    const char* what;
    frame_spec frame;
    int action;                 // with no socket on queue 0
    kwik_xdp_verdict verdict;   // the counter it bumps
};

const verdict_case verdict_cases[] = {
    {"Kwik UDP over IPv4", {}, XDP_PASS, KWIK_XDP_NO_SOCKET},
    {"Kwik UDP over IPv6", {.ip_version = 6, .dst = "fd00::1"}, XDP_PASS, KWIK_XDP_NO_SOCKET},
    {"Kwik UDP, 802.1Q tag", {.vlan_tpid = 0x8100}, XDP_PASS, KWIK_XDP_NO_SOCKET},
    {"Kwik UDP, 802.1ad tag, IPv6", {.vlan_tpid = 0x88a8, .ip_version = 6, .dst = "fd00::1"}, XDP_PASS,
     KWIK_XDP_NO_SOCKET},
    {"Kwik UDP, IPv4 options (IHL 7)", {.ihl = 7}, XDP_PASS, KWIK_XDP_NO_SOCKET},
    {"second Kwik port", {.dst_port = 7708}, XDP_PASS, KWIK_XDP_NO_SOCKET},
    {"other UDP port", {.dst_port = 53}, XDP_PASS, KWIK_XDP_NOT_KWIK_PORT},
    {"other UDP port, IPv6", {.ip_version = 6, .dst = "fd00::1", .dst_port = 53}, XDP_PASS, KWIK_XDP_NOT_KWIK_PORT},
    {"Kwik port, another address", {.dst = "10.0.0.9"}, XDP_PASS, KWIK_XDP_NOT_KWIK_ADDRESS},
    {"Kwik port, another IPv6 address", {.ip_version = 6, .dst = "fd00::9"}, XDP_PASS, KWIK_XDP_NOT_KWIK_ADDRESS},
    {"TCP", {.protocol = 6, .dst_port = 7707}, XDP_PASS, KWIK_XDP_NOT_UDP},
    {"ICMP", {.protocol = 1}, XDP_PASS, KWIK_XDP_NOT_UDP},
    {"ICMPv6", {.ip_version = 6, .protocol = 58, .dst = "fd00::1"}, XDP_PASS, KWIK_XDP_NOT_UDP},
    {"ARP", {.ip_version = 0}, XDP_PASS, KWIK_XDP_NOT_IP},
    {"IPv4 first fragment (MF)", {.frag = 0x2000}, XDP_PASS, KWIK_XDP_FRAGMENT},
    {"IPv4 later fragment (offset)", {.frag = 0x0010}, XDP_PASS, KWIK_XDP_FRAGMENT},
    {"IPv4, DF set", {.frag = 0x4000}, XDP_PASS, KWIK_XDP_NO_SOCKET},
    {"truncated in the IPv4 header", {.truncate_to = 14 + 12}, XDP_PASS, KWIK_XDP_TRUNCATED},
    {"truncated in the UDP header", {.truncate_to = 14 + 20 + 4}, XDP_PASS, KWIK_XDP_TRUNCATED},
    {"truncated in the IPv6 header", {.ip_version = 6, .dst = "fd00::1", .truncate_to = 14 + 30}, XDP_PASS,
     KWIK_XDP_TRUNCATED},
    {"truncated in the VLAN tag", {.vlan_tpid = 0x8100, .truncate_to = 15}, XDP_PASS, KWIK_XDP_TRUNCATED},
    {"IHL past the frame", {.ihl = 15, .truncate_to = 14 + 60}, XDP_PASS, KWIK_XDP_TRUNCATED},
    {"IHL below 5", {.ihl = 4}, XDP_PASS, KWIK_XDP_TRUNCATED},
};

drivers::xdp_program load() {
    auto p = drivers::load_xdp_object(KWIK_XDP_BUILD_OBJECT);
    if (!p.ok()) {
        ADD_FAILURE() << p.message();
        std::abort();
    }
    return std::move(p).value();
}

void fill(drivers::xdp_program& p) {
    const std::uint16_t ports[] = {7707, 7708};
    const drivers::xdp_address addresses[] = {*drivers::parse_xdp_address("10.0.0.1"),
                                              *drivers::parse_xdp_address("fd00::1")};
    ASSERT_TRUE(p.set_kwik_ports(ports).ok());
    ASSERT_TRUE(p.set_addresses(addresses).ok());
}

// ---- tests --------------------------------------------------------------------------------

TEST(xdp_program, every_frame_gets_its_verdict_and_counter) {
    REQUIRE_NETNS();
    drivers::xdp_program p = load();
    fill(p);
    drivers::xdp_counters expected;
    for (const verdict_case& c : verdict_cases) {
        SCOPED_TRACE(c.what);
        EXPECT_EQ(run(p.program_fd(), make_frame(c.frame)), c.action);
        ++expected.by_verdict[c.verdict];
        auto got = p.counters();
        ASSERT_TRUE(got.ok()) << got.message();
        EXPECT_EQ(got->by_verdict, expected.by_verdict);
    }
    EXPECT_EQ(p.counters()->redirected(), 0u);
    EXPECT_EQ(p.counters()->passed(), std::size(verdict_cases));
}

TEST(xdp_program, no_address_filter_when_none_is_given) {
    REQUIRE_NETNS();
    drivers::xdp_program p = load();
    fill(p);
    ASSERT_TRUE(p.set_addresses({}).ok());
    EXPECT_TRUE(p.addresses()->empty());
    EXPECT_EQ(run(p.program_fd(), make_frame({.dst = "10.0.0.9"})), XDP_PASS);
    EXPECT_EQ(p.counters()->by_verdict[KWIK_XDP_NO_SOCKET], 1u);
    EXPECT_EQ(p.counters()->by_verdict[KWIK_XDP_NOT_KWIK_ADDRESS], 0u);
}

TEST(xdp_program, maps_read_back_what_was_written_and_replace_it) {
    REQUIRE_NETNS();
    drivers::xdp_program p = load();
    fill(p);
    EXPECT_EQ(*p.kwik_ports(), (std::vector<std::uint16_t>{7707, 7708}));
    auto a = p.addresses();
    ASSERT_TRUE(a.ok());
    ASSERT_EQ(a->size(), 2u);
    std::vector<std::string> text;
    for (const auto& x : *a) {
        text.push_back(drivers::to_string(x));
    }
    std::sort(text.begin(), text.end());
    EXPECT_EQ(text, (std::vector<std::string>{"10.0.0.1", "fd00::1"}));
    const std::uint16_t one[] = {9000};
    ASSERT_TRUE(p.set_kwik_ports(one).ok());
    EXPECT_EQ(*p.kwik_ports(), (std::vector<std::uint16_t>{9000}));
    EXPECT_EQ(run(p.program_fd(), make_frame({})), XDP_PASS);
    EXPECT_EQ(p.counters()->by_verdict[KWIK_XDP_NOT_KWIK_PORT], 1u);

    const std::vector<std::uint16_t> nine(9, 1);
    auto too_many = p.set_kwik_ports(nine);
    ASSERT_FALSE(too_many.ok());
    EXPECT_NE(too_many.message().find("kwik_ports"), std::string::npos) << too_many.message();
    EXPECT_FALSE(p.set_kwik_ports({}).ok());
    EXPECT_FALSE(drivers::parse_xdp_address("10.0.0.300").has_value());
}

// With an AF_XDP socket on queue 0 in xsks_map, a Kwik frame is XDP_REDIRECT (test runs do not
// deliver it: the verdict and the counter are what is checked).
TEST(xdp_program, kwik_frames_are_redirected_to_the_queue_socket) {
    REQUIRE_NETNS();
    drivers::xdp_program p = load();
    fill(p);
    constexpr std::size_t frames = 64;
    const std::size_t size = frames * XSK_UMEM__DEFAULT_FRAME_SIZE;
    void* area = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(area, MAP_FAILED);
    xsk_umem* umem = nullptr;
    xsk_ring_prod fill_ring{};
    xsk_ring_cons comp_ring{};
    ASSERT_EQ(xsk_umem__create(&umem, area, size, &fill_ring, &comp_ring, nullptr), 0);
    xsk_socket_config sc{};
    sc.rx_size = XSK_RING_CONS__DEFAULT_NUM_DESCS;
    sc.tx_size = XSK_RING_PROD__DEFAULT_NUM_DESCS;
    sc.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;
    sc.bind_flags = XDP_COPY;
    xsk_socket* xsk = nullptr;
    xsk_ring_cons rx{};
    xsk_ring_prod tx{};
    const int created = xsk_socket__create(&xsk, iface, 0, umem, &rx, &tx, &sc);
    ASSERT_EQ(created, 0) << "xsk_socket__create: " << std::strerror(-created);
    const std::uint32_t queue = 0;
    const int fd = xsk_socket__fd(xsk);
    // Through the attached program's maps, found by name as the PMD finds them.
    auto attached = p.attach(iface, drivers::xdp_mode::native);
    ASSERT_TRUE(attached.ok()) << attached.message();
    auto found = drivers::xdp_program::open_attached(iface);
    ASSERT_TRUE(found.ok()) << found.message();
    auto placed = found->set_socket(queue, fd);
    ASSERT_TRUE(placed.ok()) << placed.message();
    EXPECT_EQ(run(p.program_fd(), make_frame({})), XDP_REDIRECT);
    EXPECT_EQ(run(p.program_fd(), make_frame({.ip_version = 6, .dst = "fd00::1"})), XDP_REDIRECT);
    EXPECT_EQ(run(p.program_fd(), make_frame({.dst_port = 53})), XDP_PASS);
    auto c = found->counters();
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->redirected(), 2u);
    EXPECT_EQ(c->by_verdict[KWIK_XDP_NOT_KWIK_PORT], 1u);
    xsk_socket__delete(xsk);
    xsk_umem__delete(umem);
    munmap(area, size);
    auto there = drivers::query_xdp(iface);
    ASSERT_TRUE(there.ok() && there->has_value());
    ASSERT_TRUE(drivers::detach_xdp(iface, **there).ok());
}

TEST(xdp_program, attach_query_open_and_detach) {
    REQUIRE_NETNS();
    drivers::xdp_program p = load();
    ASSERT_TRUE(p.attach(iface, drivers::xdp_mode::generic).ok());
    auto there = drivers::query_xdp(iface);
    ASSERT_TRUE(there.ok()) << there.message();
    ASSERT_TRUE(there->has_value());
    EXPECT_TRUE((*there)->ours());
    EXPECT_EQ((*there)->mode, drivers::xdp_mode::generic);
    EXPECT_EQ((*there)->program_id, p.program_id());
    // A second attach is refused, naming what is there.
    drivers::xdp_program q = load();
    auto again = q.attach(iface, drivers::xdp_mode::native);
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.code(), EBUSY);
    EXPECT_NE(again.message().find("kwik_xdp"), std::string::npos) << again.message();
    // Maps written through one handle are what another handle on the attached program reads.
    fill(p);
    auto found = drivers::xdp_program::open_attached(iface);
    ASSERT_TRUE(found.ok()) << found.message();
    EXPECT_EQ(*found->kwik_ports(), (std::vector<std::uint16_t>{7707, 7708}));
    EXPECT_EQ(found->addresses()->size(), 2u);
    // A stale kwik_xdp is removed and reported; then nothing is attached.
    auto stale = drivers::remove_stale_xdp(iface);
    ASSERT_TRUE(stale.ok()) << stale.message();
    ASSERT_TRUE(stale->has_value());
    EXPECT_EQ((*stale)->program_id, p.program_id());
    EXPECT_FALSE(drivers::query_xdp(iface)->has_value());
    EXPECT_FALSE(drivers::remove_stale_xdp(iface)->has_value());
    auto none = drivers::xdp_program::open_attached(iface);
    ASSERT_FALSE(none.ok());
    EXPECT_EQ(none.code(), ENOENT);
    auto missing = drivers::query_xdp("kxdp-none");
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.code(), ENODEV);
    EXPECT_NE(missing.message().find("kxdp-none"), std::string::npos);
}

// A program that is not ours (XDP_PASS in two instructions, named "other_xdp") is never detached
// by the stale-program check, nor by detach without force.
TEST(xdp_program, a_foreign_program_is_left_alone_unless_forced) {
    REQUIRE_NETNS();
    const bpf_insn insns[] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .src_reg = 0, .off = 0, .imm = XDP_PASS},
        {.code = BPF_JMP | BPF_EXIT, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0},
    };
    const int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "other_xdp", "GPL", insns, 2, nullptr);
    ASSERT_GE(fd, 0) << std::strerror(-fd);
    const unsigned index = *drivers::interface_index(iface);
    ASSERT_EQ(bpf_xdp_attach(static_cast<int>(index), fd, XDP_FLAGS_SKB_MODE, nullptr), 0);
    close(fd);
    auto there = drivers::query_xdp(iface);
    ASSERT_TRUE(there.ok() && there->has_value());
    EXPECT_FALSE((*there)->ours());
    EXPECT_EQ((*there)->name, "other_xdp");
    auto stale = drivers::remove_stale_xdp(iface);
    ASSERT_FALSE(stale.ok());
    EXPECT_EQ(stale.code(), EBUSY);
    EXPECT_NE(stale.message().find("other_xdp"), std::string::npos) << stale.message();
    EXPECT_FALSE(drivers::xdp_program::open_attached(iface).ok());
    auto refused = drivers::detach_xdp(iface, **there);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.code(), EPERM);
    EXPECT_TRUE(drivers::query_xdp(iface)->has_value());
    ASSERT_TRUE(drivers::detach_xdp(iface, **there, true).ok());
    EXPECT_FALSE(drivers::query_xdp(iface)->has_value());
}

} // namespace

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    ::testing::AddGlobalTestEnvironment(new netns_environment);
    return RUN_ALL_TESTS();
}
