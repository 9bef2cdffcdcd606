// Reassembly: the segment tree (intrusive AVL), the pool, and the insert paths.
#include "dataplane/transport/reassembler.hpp"

#include <algorithm>

namespace kwik::transport {

namespace detail {

namespace {

std::int32_t height_of(const segment* s) noexcept { return s != nullptr ? s->height : 0; }

void update_height(segment* s) noexcept { s->height = 1 + std::max(height_of(s->left), height_of(s->right)); }

std::int32_t balance_of(const segment* s) noexcept { return height_of(s->left) - height_of(s->right); }

} // namespace

segment* segment_tree::next(segment* s) noexcept {
    if (s->right != nullptr) {
        s = s->right;
        while (s->left != nullptr) {
            s = s->left;
        }
        return s;
    }
    segment* p = s->parent;
    while (p != nullptr && p->right == s) {
        s = p;
        p = p->parent;
    }
    return p;
}

segment* segment_tree::floor(std::uint64_t key) const noexcept {
    segment* n = _root;
    segment* best = nullptr;
    while (n != nullptr) {
        if (n->start <= key) {
            best = n;
            n = n->right;
        } else {
            n = n->left;
        }
    }
    return best;
}

segment* segment_tree::first_ending_after(std::uint64_t offset) const noexcept {
    segment* n = _root;
    segment* best = nullptr;
    while (n != nullptr) {
        if (n->end > offset) {
            best = n;
            n = n->left;
        } else {
            n = n->right;
        }
    }
    return best;
}

void segment_tree::replace_child(segment* parent, segment* old_child, segment* new_child) noexcept {
    if (parent == nullptr) {
        _root = new_child;
    } else if (parent->left == old_child) {
        parent->left = new_child;
    } else {
        parent->right = new_child;
    }
}

segment* segment_tree::rotate_left(segment* x) noexcept {
    segment* y = x->right;
    x->right = y->left;
    if (y->left != nullptr) {
        y->left->parent = x;
    }
    y->parent = x->parent;
    replace_child(x->parent, x, y);
    y->left = x;
    x->parent = y;
    update_height(x);
    update_height(y);
    return y;
}

segment* segment_tree::rotate_right(segment* x) noexcept {
    segment* y = x->left;
    x->left = y->right;
    if (y->right != nullptr) {
        y->right->parent = x;
    }
    y->parent = x->parent;
    replace_child(x->parent, x, y);
    y->right = x;
    x->parent = y;
    update_height(x);
    update_height(y);
    return y;
}

// Walks from n towards the root restoring heights and balance. Stops at the first subtree whose
// height came out as before: nothing above it can have changed (heights depend only on the
// children's heights). About 2 levels on average instead of log2(n).
void segment_tree::retrace(segment* n) noexcept {
    while (n != nullptr) {
        const std::int32_t old_height = n->height;
        update_height(n);
        const std::int32_t b = balance_of(n);
        if (b > 1) {
            if (balance_of(n->left) < 0) {
                rotate_left(n->left);
            }
            n = rotate_right(n);
        } else if (b < -1) {
            if (balance_of(n->right) > 0) {
                rotate_right(n->right);
            }
            n = rotate_left(n);
        }
        if (n->height == old_height) {
            return;
        }
        n = n->parent;
    }
}

void segment_tree::insert(segment* s) noexcept {
    s->left = nullptr;
    s->right = nullptr;
    s->height = 1;
    segment* parent = nullptr;
    segment* n = _root;
    bool left = false;
    while (n != nullptr) {
        parent = n;
        left = s->start < n->start;
        n = left ? n->left : n->right;
    }
    s->parent = parent;
    if (parent == nullptr) {
        _root = s;
    } else if (left) {
        parent->left = s;
    } else {
        parent->right = s;
    }
    if (_first == nullptr || s->start < _first->start) {
        _first = s;
    }
    retrace(parent);
}

void segment_tree::insert_before(segment* s, segment* successor) noexcept {
    s->left = nullptr;
    s->right = nullptr;
    s->height = 1;
    segment* parent;
    if (successor == nullptr) {
        // The new maximum: the right spine's end.
        parent = _root;
        while (parent != nullptr && parent->right != nullptr) {
            parent = parent->right;
        }
        if (parent == nullptr) {
            _root = s;
        } else {
            parent->right = s;
        }
    } else if (successor->left == nullptr) {
        parent = successor;
        parent->left = s;
    } else {
        parent = successor->left; // the predecessor: rightmost of the left subtree
        while (parent->right != nullptr) {
            parent = parent->right;
        }
        parent->right = s;
    }
    s->parent = parent;
    if (_first == nullptr || s->start < _first->start) {
        _first = s;
    }
    retrace(parent);
}

void segment_tree::erase(segment* z) noexcept {
    if (z == _first) {
        _first = next(z);
    }
    segment* from;
    if (z->left == nullptr || z->right == nullptr) {
        segment* child = z->left != nullptr ? z->left : z->right;
        replace_child(z->parent, z, child);
        if (child != nullptr) {
            child->parent = z->parent;
        }
        from = z->parent;
    } else {
        // Two children: the successor y (leftmost of the right subtree, no left child) takes
        // z's place in the tree.
        segment* y = z->right;
        while (y->left != nullptr) {
            y = y->left;
        }
        if (y->parent != z) {
            from = y->parent;
            from->left = y->right;
            if (y->right != nullptr) {
                y->right->parent = from;
            }
            y->right = z->right;
            z->right->parent = y;
        } else {
            from = y;
        }
        y->left = z->left;
        z->left->parent = y;
        replace_child(z->parent, z, y);
        y->parent = z->parent;
        y->height = z->height;
    }
    z->left = nullptr;
    z->right = nullptr;
    z->parent = nullptr;
    retrace(from);
}

namespace {

// Returns the subtree height, or -1 if anything is wrong. lo/hi bound the starts and ends.
std::int32_t check_subtree(const segment* n, const segment* parent, std::uint64_t lo, std::uint64_t hi) noexcept {
    if (n == nullptr) {
        return 0;
    }
    if (n->parent != parent || n->start >= n->end || n->start < lo || n->end > hi) {
        return -1;
    }
    const std::int32_t l = check_subtree(n->left, n, lo, n->start);
    const std::int32_t r = check_subtree(n->right, n, n->end, hi);
    if (l < 0 || r < 0 || l - r > 1 || r - l > 1) {
        return -1;
    }
    const std::int32_t h = 1 + std::max(l, r);
    return h == n->height ? h : -1;
}

} // namespace

bool segment_tree::valid() const noexcept {
    if (check_subtree(_root, nullptr, 0, std::numeric_limits<std::uint64_t>::max()) < 0) {
        return false;
    }
    const segment* f = _root;
    while (f != nullptr && f->left != nullptr) {
        f = f->left;
    }
    return f == _first;
}

} // namespace detail

segment_pool::segment_pool(std::uint32_t capacity)
    : _nodes(std::make_unique<detail::segment[]>(capacity)), _capacity(capacity) {
    for (std::uint32_t i = capacity; i > 0; --i) {
        _nodes[i - 1].left = _free;
        _free = &_nodes[i - 1];
    }
}

reassembler::reassembler(const buffer_ops* ops, segment_pool* pool, bool ordered) noexcept
    : _ops(ops), _pool(pool), _ordered(ordered) {}

reassembler::~reassembler() { release_all(); }

reassembler::reassembler(reassembler&& other) noexcept
    : _ops(other._ops), _pool(other._pool), _tree(std::move(other._tree)),
      _fifo_head(std::exchange(other._fifo_head, nullptr)), _fifo_tail(std::exchange(other._fifo_tail, nullptr)),
      _delivered(other._delivered), _contiguous(other._contiguous), _highest(other._highest), _final(other._final),
      _buffered(std::exchange(other._buffered, 0)), _has_final(other._has_final), _ordered(other._ordered) {}

reassembler& reassembler::operator=(reassembler&& other) noexcept {
    if (this != &other) {
        release_all();
        _ops = other._ops;
        _pool = other._pool;
        _tree = std::move(other._tree);
        _fifo_head = std::exchange(other._fifo_head, nullptr);
        _fifo_tail = std::exchange(other._fifo_tail, nullptr);
        _delivered = other._delivered;
        _contiguous = other._contiguous;
        _highest = other._highest;
        _final = other._final;
        _buffered = std::exchange(other._buffered, 0);
        _has_final = other._has_final;
        _ordered = other._ordered;
    }
    return *this;
}

void reassembler::release_all() noexcept {
    while (_fifo_head != nullptr) {
        detail::segment* s = _fifo_head;
        _fifo_head = s->left;
        free_segment(s);
    }
    _fifo_tail = nullptr;
    _tree.clear([this](detail::segment* s) { free_segment(s); });
    _buffered = 0;
}

void reassembler::reset() noexcept {
    release_all();
    _delivered = 0;
    _contiguous = 0;
    _highest = 0;
    _final = std::numeric_limits<std::uint64_t>::max();
    _has_final = false;
}

reassembly_error reassembler::check_final(std::uint64_t end, bool fin) const noexcept {
    if (fin) {
        if (_has_final) {
            if (end != _final) {
                return reassembly_error::final_size_changed;
            }
        } else if (end < _highest) {
            return reassembly_error::beyond_final_size;
        }
    } else if (_has_final && end > _final) {
        return reassembly_error::beyond_final_size;
    }
    return reassembly_error::none;
}

reassembly_error reassembler::insert(std::uint64_t offset, buffer_ref data, bool fin) noexcept {
    if (data.len == 0 && !fin) {
        return reassembly_error::none;
    }
    const std::uint64_t end = offset + data.len;
    const reassembly_error err = check_final(end, fin);
    if (err != reassembly_error::none) {
        return err;
    }
    if (end <= _contiguous || data.len == 0) {
        note(end, fin); // a duplicate, or a FIN-only frame
        return reassembly_error::none;
    }
    if (_tree.empty() && offset <= _contiguous) {
        // Fast path: at the contiguous end with nothing buffered beyond it. Everything held is
        // on the FIFO (ordered: exactly [_delivered, _contiguous)), so appending keeps order.
        detail::segment* s = _pool->acquire();
        if (s == nullptr) [[unlikely]] {
            return reassembly_error::out_of_segments;
        }
        s->start = _contiguous;
        s->end = end;
        s->data = slice(data, _contiguous - offset, end - _contiguous);
        _ops->retain(data.owner);
        push_fifo(s);
        _buffered += end - _contiguous;
        _contiguous = end;
        note(end, fin);
        return reassembly_error::none;
    }
    return _ordered ? insert_ordered(offset, data, fin) : insert_unordered(offset, data, fin);
}

// Gaps in the tree's coverage within [start, end), start >= _contiguous, walking from n, the
// first segment ending above start. The tree's segments are disjoint, so the walk is one step
// per segment touched; a frame that overlaps nothing is one gap without a walk.
std::uint32_t reassembler::count_gaps(std::uint64_t start, std::uint64_t end, detail::segment* n) noexcept {
    if (n == nullptr || n->start >= end) {
        return 1;
    }
    std::uint32_t gaps = 0;
    std::uint64_t cur = start;
    while (cur < end) {
        if (n != nullptr && n->start <= cur) {
            cur = n->end;
            n = detail::segment_tree::next(n);
            continue;
        }
        const std::uint64_t gap_end = n != nullptr ? std::min(n->start, end) : end;
        ++gaps;
        cur = gap_end;
    }
    return gaps;
}

reassembly_error reassembler::insert_ordered(std::uint64_t offset, buffer_ref data, bool fin) noexcept {
    const std::uint64_t end = offset + data.len;
    const std::uint64_t start = std::max(offset, _contiguous);
    detail::segment* const first = _tree.first_ending_after(start); // the one descent from the root
    if (count_gaps(start, end, first) > _pool->available()) {
        return reassembly_error::out_of_segments;
    }
    // Each gap becomes a segment holding a slice of this frame, linked in just before `n`
    // (no descent). Inserting before `n` leaves next(n) unchanged, so the walk stays valid while
    // the tree rebalances.
    detail::segment* at_contiguous = nullptr;
    std::uint64_t cur = start;
    detail::segment* n = first;
    while (cur < end) {
        if (n != nullptr && n->start <= cur) {
            cur = n->end;
            n = detail::segment_tree::next(n);
            continue;
        }
        const std::uint64_t gap_end = n != nullptr ? std::min(n->start, end) : end;
        detail::segment* s = _pool->acquire();
        s->start = cur;
        s->end = gap_end;
        s->data = slice(data, cur - offset, gap_end - cur);
        _ops->retain(data.owner);
        _tree.insert_before(s, n);
        _buffered += gap_end - cur;
        if (cur == _contiguous) {
            at_contiguous = s;
        }
        cur = gap_end;
    }
    // The frame may have closed the gap at the contiguous end: walk the segments now joined.
    for (detail::segment* s = at_contiguous; s != nullptr && s->start == _contiguous;
         s = detail::segment_tree::next(s)) {
        _contiguous = s->end;
    }
    note(end, fin);
    return reassembly_error::none;
}

reassembly_error reassembler::insert_unordered(std::uint64_t offset, buffer_ref data, bool fin) noexcept {
    const std::uint64_t end = offset + data.len;
    const std::uint64_t start = std::max(offset, _contiguous);
    detail::segment* const first = _tree.first_ending_after(start);
    const std::uint32_t gaps = count_gaps(start, end, first);
    // Coverage needs a node of its own only when [start, end) touches neither the prefix nor a
    // range on either side.
    detail::segment* before = nullptr;
    detail::segment* after = nullptr;
    bool new_range = false;
    if (start > _contiguous) {
        before = _tree.floor(start);
        if (before == nullptr || before->end < start) {
            after = before != nullptr ? detail::segment_tree::next(before) : _tree.first();
            new_range = after == nullptr || after->start > end;
        }
    }
    if (gaps + (new_range ? 1u : 0u) > _pool->available()) {
        return reassembly_error::out_of_segments;
    }
    // New pieces go to the FIFO, in stream order within the frame.
    std::uint64_t cur = start;
    detail::segment* n = first;
    while (cur < end) {
        if (n != nullptr && n->start <= cur) {
            cur = n->end;
            n = detail::segment_tree::next(n);
            continue;
        }
        const std::uint64_t gap_end = n != nullptr ? std::min(n->start, end) : end;
        detail::segment* s = _pool->acquire();
        s->start = cur;
        s->end = gap_end;
        s->data = slice(data, cur - offset, gap_end - cur);
        _ops->retain(data.owner);
        push_fifo(s);
        _buffered += gap_end - cur;
        cur = gap_end;
    }
    // Coverage: union with [start, end), merging neighbours.
    detail::segment* range;
    if (start <= _contiguous) {
        _contiguous = end;
        range = nullptr;
    } else if (before != nullptr && before->end >= start) {
        range = before;
        range->end = std::max(range->end, end);
    } else if (!new_range) {
        range = after; // after->start in (start, end]: lowering its key keeps the order
        range->start = start;
        range->end = std::max(range->end, end);
    } else {
        range = _pool->acquire();
        range->start = start;
        range->end = end;
        _tree.insert(range);
    }
    if (range != nullptr) {
        for (detail::segment* m = detail::segment_tree::next(range); m != nullptr && m->start <= range->end;
             m = detail::segment_tree::next(range)) {
            range->end = std::max(range->end, m->end);
            _tree.erase(m);
            _pool->release(m);
        }
    }
    // Ranges reaching the prefix join it: one after a merge above the prefix, possibly several
    // when the frame extended the prefix itself.
    for (detail::segment* f = _tree.first(); f != nullptr && f->start <= _contiguous; f = _tree.first()) {
        _contiguous = std::max(_contiguous, f->end);
        _tree.erase(f);
        _pool->release(f);
    }
    note(end, fin);
    return reassembly_error::none;
}

bool reassembler::valid() const noexcept {
    if (!_tree.valid()) {
        return false;
    }
    std::uint64_t held = 0;
    std::uint64_t expect = _delivered;
    for (const detail::segment* s = _fifo_head; s != nullptr; s = s->left) {
        if (s->data.len != s->end - s->start || s->data.len == 0) {
            return false;
        }
        if (_ordered) {
            if (s->start != expect) {
                return false;
            }
            expect = s->end;
        }
        held += s->data.len;
        if (s->left == nullptr && s != _fifo_tail) {
            return false;
        }
    }
    std::uint64_t prev_end = 0;
    for (detail::segment* s = _tree.first(); s != nullptr; s = detail::segment_tree::next(s)) {
        if (_ordered) {
            if (s->data.len != s->end - s->start || s->start < expect) {
                return false;
            }
            held += s->data.len;
        } else {
            // Coverage ranges: above the prefix, separated by gaps, no data.
            if (s->data.len != 0 || s->start <= _contiguous || (prev_end != 0 && s->start <= prev_end)) {
                return false;
            }
            prev_end = s->end;
        }
    }
    if (_ordered && _tree.empty() && expect != _contiguous) {
        return false;
    }
    return held == _buffered && _contiguous <= _highest && (!_has_final || _highest <= _final);
}

} // namespace kwik::transport
