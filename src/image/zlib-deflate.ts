/**
 * A zlib (RFC 1950/1951) compressor that writes exactly the bytes stock zlib 1.2.x writes with
 * deflateInit2(level 9, Z_DEFLATED, 15, 8, Z_DEFAULT_STRATEGY) and deflateSetDictionary, that is
 * what python's `zlib.compressobj(9, zdict=...)` gives. python-uefivars compresses the AWS
 * variable store that way; Node bundles Chromium's zlib, whose level-9 matches differ, so to write
 * blobs byte-identical to python-uefivars' we need the stock algorithm: lazy matching
 * (deflate_slow) with hash chains, symbol buffer of 16383 entries per block, and the same Huffman
 * tree construction (heap order, depth tie-break, length limiting) and block type choice.
 *
 * Written from the algorithm as zlib documents and implements it; only level 9 with the
 * default strategy is supported, the only configuration the AWS format uses. Inputs here are a
 * few hundred KiB at most, so clarity wins over speed.
 */

const MIN_MATCH = 3;
const MAX_MATCH = 258;
const W_BITS = 15;
const W_SIZE = 1 << W_BITS;
const W_MASK = W_SIZE - 1;
const WINDOW_SIZE = 2 * W_SIZE;
const HASH_BITS = 15; // memLevel 8 + 7
const HASH_SIZE = 1 << HASH_BITS;
const HASH_MASK = HASH_SIZE - 1;
const HASH_SHIFT = Math.floor((HASH_BITS + MIN_MATCH - 1) / MIN_MATCH);
const MIN_LOOKAHEAD = MAX_MATCH + MIN_MATCH + 1;
const MAX_DIST = W_SIZE - MIN_LOOKAHEAD;
const WIN_INIT = MAX_MATCH;
const TOO_FAR = 4096;
const LIT_BUFSIZE = 1 << (8 + 6);
const SYM_END = (LIT_BUFSIZE - 1) * 3;
// Level 9 of zlib's configuration table: good, lazy, nice, chain.
const GOOD_MATCH = 32;
const MAX_LAZY = 258;
const NICE_MATCH = 258;
const MAX_CHAIN = 4096;

const LENGTH_CODES = 29;
const LITERALS = 256;
const L_CODES = LITERALS + 1 + LENGTH_CODES;
const D_CODES = 30;
const BL_CODES = 19;
const HEAP_SIZE = 2 * L_CODES + 1;
const MAX_BITS = 15;
const MAX_BL_BITS = 7;
const END_BLOCK = 256;
const REP_3_6 = 16;
const REPZ_3_10 = 17;
const REPZ_11_138 = 18;

const EXTRA_LBITS = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
const EXTRA_DBITS = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
const EXTRA_BLBITS = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 7];
const BL_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

function reverseBits(code: number, len: number): number {
  let res = 0;
  for (let i = 0; i < len; i++) {
    res = (res << 1) | (code & 1);
    code >>>= 1;
  }
  return res;
}

/**
 * A Huffman tree as zlib keeps it: `fc` is Freq, later Code (one union in zlib), `dl` is Dad,
 * later Len. Keeping the unions matters: zlib reads fields the other meaning wrote.
 */
interface Tree {
  fc: Uint16Array;
  dl: Uint16Array;
}

const newTree = (n: number): Tree => ({ fc: new Uint16Array(n), dl: new Uint16Array(n) });

interface StaticDesc {
  tree: Tree | null;
  extra: readonly number[];
  extraBase: number;
  elems: number;
  maxLength: number;
}

const LENGTH_CODE = new Uint8Array(256);
const BASE_LENGTH = new Int32Array(LENGTH_CODES);
const DIST_CODE = new Uint8Array(512);
const BASE_DIST = new Int32Array(D_CODES);
const STATIC_LTREE = newTree(L_CODES + 2);
const STATIC_DTREE = newTree(D_CODES);

function genCodes(tree: Tree, maxCode: number, blCount: Uint16Array): void {
  const next = new Uint16Array(MAX_BITS + 1);
  let code = 0;
  for (let bits = 1; bits <= MAX_BITS; bits++) {
    code = ((code + (blCount[bits - 1] as number)) << 1) & 0xffff;
    next[bits] = code;
  }
  for (let n = 0; n <= maxCode; n++) {
    const len = tree.dl[n] as number;
    if (len === 0) continue;
    tree.fc[n] = reverseBits(next[len] as number, len);
    next[len] = (next[len] as number) + 1;
  }
}

(function staticInit(): void {
  let length = 0;
  let code = 0;
  for (code = 0; code < LENGTH_CODES - 1; code++) {
    BASE_LENGTH[code] = length;
    for (let n = 0; n < 1 << (EXTRA_LBITS[code] as number); n++) LENGTH_CODE[length++] = code;
  }
  LENGTH_CODE[length - 1] = code;
  let dist = 0;
  for (code = 0; code < 16; code++) {
    BASE_DIST[code] = dist;
    for (let n = 0; n < 1 << (EXTRA_DBITS[code] as number); n++) DIST_CODE[dist++] = code;
  }
  dist >>= 7;
  for (; code < D_CODES; code++) {
    BASE_DIST[code] = dist << 7;
    for (let n = 0; n < 1 << ((EXTRA_DBITS[code] as number) - 7); n++) DIST_CODE[256 + dist++] = code;
  }
  const blCount = new Uint16Array(MAX_BITS + 1);
  let n = 0;
  const set = (to: number, len: number): void => {
    while (n <= to) {
      STATIC_LTREE.dl[n++] = len;
      blCount[len] = (blCount[len] as number) + 1;
    }
  };
  set(143, 8);
  set(255, 9);
  set(279, 7);
  set(287, 8);
  genCodes(STATIC_LTREE, L_CODES + 1, blCount);
  for (let d = 0; d < D_CODES; d++) {
    STATIC_DTREE.dl[d] = 5;
    STATIC_DTREE.fc[d] = reverseBits(d, 5);
  }
})();

const L_DESC: StaticDesc = { tree: STATIC_LTREE, extra: EXTRA_LBITS, extraBase: LITERALS + 1, elems: L_CODES, maxLength: MAX_BITS };
const D_DESC: StaticDesc = { tree: STATIC_DTREE, extra: EXTRA_DBITS, extraBase: 0, elems: D_CODES, maxLength: MAX_BITS };
const BL_DESC: StaticDesc = { tree: null, extra: EXTRA_BLBITS, extraBase: 0, elems: BL_CODES, maxLength: MAX_BL_BITS };

const dCode = (dist: number): number => (dist < 256 ? (DIST_CODE[dist] as number) : (DIST_CODE[256 + (dist >> 7)] as number));

/** LSB-first bit writer; byte output is what zlib's 16-bit bi_buf writes. */
class Bits {
  private out: number[] = [];
  private acc = 0;
  private n = 0;

  send(value: number, len: number): void {
    for (let i = 0; i < len; i++) {
      this.acc |= ((value >>> i) & 1) << this.n;
      if (++this.n === 8) {
        this.out.push(this.acc);
        this.acc = 0;
        this.n = 0;
      }
    }
  }

  /** bi_windup: pad to a byte boundary with zero bits. */
  windup(): void {
    if (this.n > 0) this.out.push(this.acc);
    this.acc = 0;
    this.n = 0;
  }

  byte(b: number): void {
    this.out.push(b & 0xff);
  }

  bytes(): Buffer {
    return Buffer.from(this.out);
  }
}

class Deflater {
  private readonly window = new Uint8Array(WINDOW_SIZE);
  private readonly head = new Uint16Array(HASH_SIZE);
  private readonly prev = new Uint16Array(W_SIZE);
  private insH = 0;
  private strstart = 0;
  private blockStart = 0;
  private lookahead = 0;
  private insert = 0;
  private matchLength = MIN_MATCH - 1;
  private prevLength = MIN_MATCH - 1;
  private matchAvailable = false;
  private matchStart = 0;
  private prevMatch = 0;
  private highWater = 0;

  private input: Uint8Array = new Uint8Array(0);
  private inPos = 0;

  private readonly dynLtree = newTree(HEAP_SIZE);
  private readonly dynDtree = newTree(2 * D_CODES + 1);
  private readonly blTree = newTree(2 * BL_CODES + 1);
  private lMax = 0;
  private dMax = 0;
  private blMax = 0;
  private readonly heap = new Int32Array(2 * L_CODES + 1);
  private heapLen = 0;
  private heapMax = 0;
  private readonly depth = new Uint8Array(2 * L_CODES + 1);
  private readonly blCount = new Uint16Array(MAX_BITS + 1);
  private readonly sym = new Uint8Array(LIT_BUFSIZE * 3);
  private symNext = 0;
  private optLen = 0;
  private staticLen = 0;
  readonly bits = new Bits();

  constructor() {
    this.initBlock();
  }

  private get availIn(): number {
    return this.input.length - this.inPos;
  }

  private updateHash(h: number, c: number): number {
    return ((h << HASH_SHIFT) ^ c) & HASH_MASK;
  }

  /** INSERT_STRING: returns the previous head of the hash chain. */
  private insertString(str: number): number {
    this.insH = this.updateHash(this.insH, this.window[str + MIN_MATCH - 1] as number);
    const head = this.head[this.insH] as number;
    this.prev[str & W_MASK] = head;
    this.head[this.insH] = str;
    return head;
  }

  private readBuf(at: number, size: number): number {
    const len = Math.min(this.availIn, size);
    if (len === 0) return 0;
    this.window.set(this.input.subarray(this.inPos, this.inPos + len), at);
    this.inPos += len;
    return len;
  }

  private slideHash(): void {
    for (let i = 0; i < HASH_SIZE; i++) {
      const m = this.head[i] as number;
      this.head[i] = m >= W_SIZE ? m - W_SIZE : 0;
    }
    for (let i = 0; i < W_SIZE; i++) {
      const m = this.prev[i] as number;
      this.prev[i] = m >= W_SIZE ? m - W_SIZE : 0;
    }
  }

  private fillWindow(): void {
    do {
      let more = WINDOW_SIZE - this.lookahead - this.strstart;
      if (this.strstart >= W_SIZE + MAX_DIST) {
        this.window.copyWithin(0, W_SIZE, W_SIZE + W_SIZE - more);
        this.matchStart -= W_SIZE;
        this.strstart -= W_SIZE;
        this.blockStart -= W_SIZE;
        if (this.insert > this.strstart) this.insert = this.strstart;
        this.slideHash();
        more += W_SIZE;
      }
      if (this.availIn === 0) break;
      const n = this.readBuf(this.strstart + this.lookahead, more);
      this.lookahead += n;
      if (this.lookahead + this.insert >= MIN_MATCH) {
        let str = this.strstart - this.insert;
        this.insH = this.window[str] as number;
        this.insH = this.updateHash(this.insH, this.window[str + 1] as number);
        while (this.insert) {
          this.insH = this.updateHash(this.insH, this.window[str + MIN_MATCH - 1] as number);
          this.prev[str & W_MASK] = this.head[this.insH] as number;
          this.head[this.insH] = str;
          str++;
          this.insert--;
          if (this.lookahead + this.insert < MIN_MATCH) break;
        }
      }
    } while (this.lookahead < MIN_LOOKAHEAD && this.availIn !== 0);
    // zlib zeroes up to WIN_INIT bytes past the data so that a match never reads stale memory.
    if (this.highWater < WINDOW_SIZE) {
      const curr = this.strstart + this.lookahead;
      if (this.highWater < curr) {
        const init = Math.min(WINDOW_SIZE - curr, WIN_INIT);
        this.window.fill(0, curr, curr + init);
        this.highWater = curr + init;
      } else if (this.highWater < curr + WIN_INIT) {
        const init = Math.min(curr + WIN_INIT - this.highWater, WINDOW_SIZE - this.highWater);
        this.window.fill(0, this.highWater, this.highWater + init);
        this.highWater += init;
      }
    }
  }

  setDictionary(dict: Uint8Array): void {
    let d = dict;
    if (d.length >= W_SIZE) d = d.subarray(d.length - W_SIZE);
    this.input = d;
    this.inPos = 0;
    this.fillWindow();
    while (this.lookahead >= MIN_MATCH) {
      let str = this.strstart;
      let n = this.lookahead - (MIN_MATCH - 1);
      do {
        this.insH = this.updateHash(this.insH, this.window[str + MIN_MATCH - 1] as number);
        this.prev[str & W_MASK] = this.head[this.insH] as number;
        this.head[this.insH] = str;
        str++;
      } while (--n);
      this.strstart = str;
      this.lookahead = MIN_MATCH - 1;
      this.fillWindow();
    }
    this.strstart += this.lookahead;
    this.blockStart = this.strstart;
    this.insert = this.lookahead;
    this.lookahead = 0;
    this.matchLength = this.prevLength = MIN_MATCH - 1;
    this.matchAvailable = false;
  }

  private longestMatch(curMatchIn: number): number {
    let curMatch = curMatchIn;
    let chainLength = MAX_CHAIN;
    const w = this.window;
    const scanStart = this.strstart;
    let bestLen = this.prevLength;
    let niceMatch = NICE_MATCH;
    const limit = this.strstart > MAX_DIST ? this.strstart - MAX_DIST : 0;
    const strend = this.strstart + MAX_MATCH;
    let scanEnd1 = w[scanStart + bestLen - 1] as number;
    let scanEnd = w[scanStart + bestLen] as number;
    if (this.prevLength >= GOOD_MATCH) chainLength >>= 2;
    if (niceMatch > this.lookahead) niceMatch = this.lookahead;
    do {
      const match = curMatch;
      if (w[match + bestLen] !== scanEnd || w[match + bestLen - 1] !== scanEnd1 || w[match] !== w[scanStart] || w[match + 1] !== w[scanStart + 1]) continue;
      // Bytes 0 and 1 are equal; byte 2 is not compared (equal hash keys imply it in zlib's
      // reasoning, and zlib does not look); compare from byte 3, eight at a time up to strend.
      let scan = scanStart + 2;
      let m = match + 2;
      let stop = false;
      while (!stop) {
        for (let k = 0; k < 8; k++) {
          if (w[++scan] !== w[++m]) {
            stop = true;
            break;
          }
        }
        if (!stop && scan >= strend) stop = true;
      }
      const len = MAX_MATCH - (strend - scan);
      if (len > bestLen) {
        this.matchStart = curMatch;
        bestLen = len;
        if (len >= niceMatch) break;
        scanEnd1 = w[scanStart + bestLen - 1] as number;
        scanEnd = w[scanStart + bestLen] as number;
      }
    } while ((curMatch = this.prev[curMatch & W_MASK] as number) > limit && --chainLength !== 0);
    return bestLen <= this.lookahead ? bestLen : this.lookahead;
  }

  // ------------------------------------------------------------------ trees

  private initBlock(): void {
    for (let n = 0; n < L_CODES; n++) this.dynLtree.fc[n] = 0;
    for (let n = 0; n < D_CODES; n++) this.dynDtree.fc[n] = 0;
    for (let n = 0; n < BL_CODES; n++) this.blTree.fc[n] = 0;
    this.dynLtree.fc[END_BLOCK] = 1;
    this.optLen = this.staticLen = 0;
    this.symNext = 0;
  }

  private tally(dist: number, lc: number): boolean {
    this.sym[this.symNext++] = dist & 0xff;
    this.sym[this.symNext++] = (dist >> 8) & 0xff;
    this.sym[this.symNext++] = lc;
    if (dist === 0) {
      this.dynLtree.fc[lc] = (this.dynLtree.fc[lc] as number) + 1;
    } else {
      const d = dist - 1;
      const l = (LENGTH_CODE[lc] as number) + LITERALS + 1;
      this.dynLtree.fc[l] = (this.dynLtree.fc[l] as number) + 1;
      const dc = dCode(d);
      this.dynDtree.fc[dc] = (this.dynDtree.fc[dc] as number) + 1;
    }
    return this.symNext === SYM_END;
  }

  private smaller(t: Tree, n: number, m: number): boolean {
    const fn = t.fc[n] as number;
    const fm = t.fc[m] as number;
    return fn < fm || (fn === fm && (this.depth[n] as number) <= (this.depth[m] as number));
  }

  private pqdownheap(t: Tree, kIn: number): void {
    let k = kIn;
    const v = this.heap[k] as number;
    let j = k << 1;
    while (j <= this.heapLen) {
      if (j < this.heapLen && this.smaller(t, this.heap[j + 1] as number, this.heap[j] as number)) j++;
      if (this.smaller(t, v, this.heap[j] as number)) break;
      this.heap[k] = this.heap[j] as number;
      k = j;
      j <<= 1;
    }
    this.heap[k] = v;
  }

  private genBitlen(t: Tree, maxCode: number, desc: StaticDesc): void {
    const stree = desc.tree;
    let overflow = 0;
    this.blCount.fill(0);
    t.dl[this.heap[this.heapMax] as number] = 0;
    let h: number;
    for (h = this.heapMax + 1; h < HEAP_SIZE; h++) {
      const n = this.heap[h] as number;
      let bits = (t.dl[t.dl[n] as number] as number) + 1;
      if (bits > desc.maxLength) {
        bits = desc.maxLength;
        overflow++;
      }
      t.dl[n] = bits;
      if (n > maxCode) continue;
      this.blCount[bits] = (this.blCount[bits] as number) + 1;
      const xbits = n >= desc.extraBase ? (desc.extra[n - desc.extraBase] as number) : 0;
      const f = t.fc[n] as number;
      this.optLen += f * (bits + xbits);
      if (stree) this.staticLen += f * ((stree.dl[n] as number) + xbits);
    }
    if (overflow === 0) return;
    do {
      let bits = desc.maxLength - 1;
      while (this.blCount[bits] === 0) bits--;
      this.blCount[bits] = (this.blCount[bits] as number) - 1;
      this.blCount[bits + 1] = (this.blCount[bits + 1] as number) + 2;
      this.blCount[desc.maxLength] = (this.blCount[desc.maxLength] as number) - 1;
      overflow -= 2;
    } while (overflow > 0);
    for (let bits = desc.maxLength; bits !== 0; bits--) {
      let n = this.blCount[bits] as number;
      while (n !== 0) {
        const m = this.heap[--h] as number;
        if (m > maxCode) continue;
        if ((t.dl[m] as number) !== bits) {
          this.optLen += (bits - (t.dl[m] as number)) * (t.fc[m] as number);
          t.dl[m] = bits;
        }
        n--;
      }
    }
  }

  /** build_tree: returns max_code. */
  private buildTree(t: Tree, desc: StaticDesc): number {
    const stree = desc.tree;
    const elems = desc.elems;
    let maxCode = -1;
    this.heapLen = 0;
    this.heapMax = HEAP_SIZE;
    for (let n = 0; n < elems; n++) {
      if (t.fc[n] !== 0) {
        this.heap[++this.heapLen] = maxCode = n;
        this.depth[n] = 0;
      } else {
        t.dl[n] = 0;
      }
    }
    while (this.heapLen < 2) {
      const node = (this.heap[++this.heapLen] = maxCode < 2 ? ++maxCode : 0);
      t.fc[node] = 1;
      this.depth[node] = 0;
      this.optLen--;
      if (stree) this.staticLen -= stree.dl[node] as number;
    }
    for (let n = this.heapLen >> 1; n >= 1; n--) this.pqdownheap(t, n);
    let node = elems;
    do {
      const n = this.heap[1] as number;
      this.heap[1] = this.heap[this.heapLen--] as number;
      this.pqdownheap(t, 1);
      const m = this.heap[1] as number;
      this.heap[--this.heapMax] = n;
      this.heap[--this.heapMax] = m;
      t.fc[node] = ((t.fc[n] as number) + (t.fc[m] as number)) & 0xffff;
      this.depth[node] = Math.max(this.depth[n] as number, this.depth[m] as number) + 1;
      t.dl[n] = t.dl[m] = node;
      this.heap[1] = node++;
      this.pqdownheap(t, 1);
    } while (this.heapLen >= 2);
    this.heap[--this.heapMax] = this.heap[1] as number;
    this.genBitlen(t, maxCode, desc);
    genCodes(t, maxCode, this.blCount);
    return maxCode;
  }

  private scanTree(t: Tree, maxCode: number): void {
    let prevlen = -1;
    let nextlen = t.dl[0] as number;
    let count = 0;
    let maxCount = 7;
    let minCount = 4;
    if (nextlen === 0) {
      maxCount = 138;
      minCount = 3;
    }
    t.dl[maxCode + 1] = 0xffff;
    const bl = this.blTree.fc;
    for (let n = 0; n <= maxCode; n++) {
      const curlen = nextlen;
      nextlen = t.dl[n + 1] as number;
      if (++count < maxCount && curlen === nextlen) continue;
      else if (count < minCount) bl[curlen] = (bl[curlen] as number) + count;
      else if (curlen !== 0) {
        if (curlen !== prevlen) bl[curlen] = (bl[curlen] as number) + 1;
        bl[REP_3_6] = (bl[REP_3_6] as number) + 1;
      } else if (count <= 10) bl[REPZ_3_10] = (bl[REPZ_3_10] as number) + 1;
      else bl[REPZ_11_138] = (bl[REPZ_11_138] as number) + 1;
      count = 0;
      prevlen = curlen;
      if (nextlen === 0) {
        maxCount = 138;
        minCount = 3;
      } else if (curlen === nextlen) {
        maxCount = 6;
        minCount = 3;
      } else {
        maxCount = 7;
        minCount = 4;
      }
    }
  }

  private sendCode(c: number, t: Tree): void {
    this.bits.send(t.fc[c] as number, t.dl[c] as number);
  }

  private sendTree(t: Tree, maxCode: number): void {
    let prevlen = -1;
    let nextlen = t.dl[0] as number;
    let count = 0;
    let maxCount = 7;
    let minCount = 4;
    if (nextlen === 0) {
      maxCount = 138;
      minCount = 3;
    }
    for (let n = 0; n <= maxCode; n++) {
      const curlen = nextlen;
      nextlen = t.dl[n + 1] as number;
      if (++count < maxCount && curlen === nextlen) continue;
      else if (count < minCount) {
        do this.sendCode(curlen, this.blTree);
        while (--count !== 0);
      } else if (curlen !== 0) {
        if (curlen !== prevlen) {
          this.sendCode(curlen, this.blTree);
          count--;
        }
        this.sendCode(REP_3_6, this.blTree);
        this.bits.send(count - 3, 2);
      } else if (count <= 10) {
        this.sendCode(REPZ_3_10, this.blTree);
        this.bits.send(count - 3, 3);
      } else {
        this.sendCode(REPZ_11_138, this.blTree);
        this.bits.send(count - 11, 7);
      }
      count = 0;
      prevlen = curlen;
      if (nextlen === 0) {
        maxCount = 138;
        minCount = 3;
      } else if (curlen === nextlen) {
        maxCount = 6;
        minCount = 3;
      } else {
        maxCount = 7;
        minCount = 4;
      }
    }
  }

  private buildBlTree(): number {
    this.scanTree(this.dynLtree, this.lMax);
    this.scanTree(this.dynDtree, this.dMax);
    this.blMax = this.buildTree(this.blTree, BL_DESC);
    let maxBlindex: number;
    for (maxBlindex = BL_CODES - 1; maxBlindex >= 3; maxBlindex--) {
      if (this.blTree.dl[BL_ORDER[maxBlindex] as number] !== 0) break;
    }
    this.optLen += 3 * (maxBlindex + 1) + 5 + 5 + 4;
    return maxBlindex;
  }

  private compressBlock(ltree: Tree, dtree: Tree): void {
    let sx = 0;
    if (this.symNext !== 0) {
      do {
        let dist = this.sym[sx++] as number;
        dist += (this.sym[sx++] as number) << 8;
        let lc = this.sym[sx++] as number;
        if (dist === 0) {
          this.sendCode(lc, ltree);
        } else {
          let code = LENGTH_CODE[lc] as number;
          this.sendCode(code + LITERALS + 1, ltree);
          let extra = EXTRA_LBITS[code] as number;
          if (extra !== 0) {
            lc -= BASE_LENGTH[code] as number;
            this.bits.send(lc, extra);
          }
          dist--;
          code = dCode(dist);
          this.sendCode(code, dtree);
          extra = EXTRA_DBITS[code] as number;
          if (extra !== 0) {
            dist -= BASE_DIST[code] as number;
            this.bits.send(dist, extra);
          }
        }
      } while (sx < this.symNext);
    }
    this.sendCode(END_BLOCK, ltree);
  }

  private flushBlock(last: boolean): void {
    const storedLen = this.strstart - this.blockStart;
    const haveBuf = this.blockStart >= 0;
    this.lMax = this.buildTree(this.dynLtree, L_DESC);
    this.dMax = this.buildTree(this.dynDtree, D_DESC);
    const maxBlindex = this.buildBlTree();
    let optLenb = (this.optLen + 3 + 7) >>> 3;
    const staticLenb = (this.staticLen + 3 + 7) >>> 3;
    if (staticLenb <= optLenb) optLenb = staticLenb;
    if (storedLen + 4 <= optLenb && haveBuf) {
      this.bits.send(last ? 1 : 0, 3);
      this.bits.windup();
      this.bits.byte(storedLen & 0xff);
      this.bits.byte(storedLen >> 8);
      this.bits.byte(~storedLen & 0xff);
      this.bits.byte((~storedLen >> 8) & 0xff);
      for (let i = 0; i < storedLen; i++) this.bits.byte(this.window[this.blockStart + i] as number);
    } else if (staticLenb === optLenb) {
      this.bits.send((1 << 1) + (last ? 1 : 0), 3);
      this.compressBlock(STATIC_LTREE, STATIC_DTREE);
    } else {
      this.bits.send((2 << 1) + (last ? 1 : 0), 3);
      const lcodes = this.lMax + 1;
      const dcodes = this.dMax + 1;
      const blcodes = maxBlindex + 1;
      this.bits.send(lcodes - 257, 5);
      this.bits.send(dcodes - 1, 5);
      this.bits.send(blcodes - 4, 4);
      for (let rank = 0; rank < blcodes; rank++) this.bits.send(this.blTree.dl[BL_ORDER[rank] as number] as number, 3);
      this.sendTree(this.dynLtree, lcodes - 1);
      this.sendTree(this.dynDtree, dcodes - 1);
      this.compressBlock(this.dynLtree, this.dynDtree);
    }
    this.initBlock();
    if (last) this.bits.windup();
    this.blockStart = this.strstart;
  }

  /** deflate_slow with Z_FINISH: all of `data`, then the last block. */
  deflateAll(data: Uint8Array): void {
    this.input = data;
    this.inPos = 0;
    for (;;) {
      if (this.lookahead < MIN_LOOKAHEAD) {
        this.fillWindow();
        if (this.lookahead === 0) break;
      }
      let hashHead = 0;
      if (this.lookahead >= MIN_MATCH) hashHead = this.insertString(this.strstart);
      this.prevLength = this.matchLength;
      this.prevMatch = this.matchStart;
      this.matchLength = MIN_MATCH - 1;
      if (hashHead !== 0 && this.prevLength < MAX_LAZY && this.strstart - hashHead <= MAX_DIST) {
        this.matchLength = this.longestMatch(hashHead);
        if (this.matchLength <= 5 && this.matchLength === MIN_MATCH && this.strstart - this.matchStart > TOO_FAR) this.matchLength = MIN_MATCH - 1;
      }
      if (this.prevLength >= MIN_MATCH && this.matchLength <= this.prevLength) {
        const maxInsert = this.strstart + this.lookahead - MIN_MATCH;
        const bflush = this.tally(this.strstart - 1 - this.prevMatch, this.prevLength - MIN_MATCH);
        this.lookahead -= this.prevLength - 1;
        this.prevLength -= 2;
        do {
          if (++this.strstart <= maxInsert) this.insertString(this.strstart);
        } while (--this.prevLength !== 0);
        this.matchAvailable = false;
        this.matchLength = MIN_MATCH - 1;
        this.strstart++;
        if (bflush) this.flushBlock(false);
      } else if (this.matchAvailable) {
        const bflush = this.tally(0, this.window[this.strstart - 1] as number);
        if (bflush) this.flushBlock(false);
        this.strstart++;
        this.lookahead--;
      } else {
        this.matchAvailable = true;
        this.strstart++;
        this.lookahead--;
      }
    }
    if (this.matchAvailable) {
      this.tally(0, this.window[this.strstart - 1] as number);
      this.matchAvailable = false;
    }
    this.flushBlock(true);
  }
}

function adler32(data: Uint8Array): number {
  let a = 1;
  let b = 0;
  for (let i = 0; i < data.length; i += 5552) {
    const end = Math.min(i + 5552, data.length);
    for (let j = i; j < end; j++) {
      a += data[j] as number;
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/**
 * The zlib stream stock zlib writes for `data` at level 9 (windowBits 15, memLevel 8, default
 * strategy), with `dictionary` preset when given: header (FLEVEL 3, FDICT), DICTID, deflate
 * data, Adler-32 of `data`.
 */
export function zlibDeflateLevel9(data: Uint8Array, dictionary?: Uint8Array): Buffer {
  const d = new Deflater();
  const preset = dictionary !== undefined && dictionary.length > 0;
  if (preset) d.setDictionary(dictionary);
  d.deflateAll(data);
  let header = ((8 + ((W_BITS - 8) << 4)) << 8) | (3 << 6);
  if (preset) header |= 0x20;
  header += 31 - (header % 31);
  const head = Buffer.alloc(preset ? 6 : 2);
  head.writeUInt16BE(header, 0);
  if (preset) head.writeUInt32BE(adler32(dictionary), 2);
  const tail = Buffer.alloc(4);
  tail.writeUInt32BE(adler32(data));
  return Buffer.concat([head, d.bits.bytes(), tail]);
}
