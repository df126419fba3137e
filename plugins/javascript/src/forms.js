// URLSearchParams and URL.prototype.searchParams, which Boa lacks. Evaluated on first use only
// (globals.rs), because every step pays for what Boa parses. Returns the class and
// searchParamsOf(url).
//
// application/x-www-form-urlencoded follows the URL Standard: only * - . _ and alphanumerics stay
// as they are, a space is '+', and invalid percent escapes decode as themselves. Each instance
// keeps its name/value list (and, for url.searchParams, its URL, which every change updates) in
// a WeakMap. url.searchParams returns the same object each time, re-read from url.search.
//
// Comments stay out of the function body: Boa parses comments between statements slowly.
(function () {
  'use strict';
  const wellFormed = (s) => (typeof s.toWellFormed === 'function' ? s.toWellFormed() : s);
  const encodeForm = (s) =>
    encodeURIComponent(wellFormed(s))
      .replace(/[!'()~]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())
      .replace(/%20/g, '+');
  const decodeForm = (s) =>
    s.replace(/\+/g, ' ').replace(/(%[0-9A-Fa-f]{2})+/g, (run) => {
      try {
        return decodeURIComponent(run);
      } catch (_) {
        return run;
      }
    });
  const parseForm = (s) => {
    const list = [];
    for (const part of (s.startsWith('?') ? s.slice(1) : s).split('&')) {
      if (part === '') continue;
      const eq = part.indexOf('=');
      const name = eq < 0 ? part : part.slice(0, eq);
      const value = eq < 0 ? '' : part.slice(eq + 1);
      list.push([decodeForm(name), decodeForm(value)]);
    }
    return list;
  };
  const serializeForm = (list) =>
    list.map(([name, value]) => `${encodeForm(name)}=${encodeForm(value)}`).join('&');

  const params = new WeakMap();
  const stateOf = (p) => {
    const state = params.get(p);
    if (!state) throw new TypeError('not a URLSearchParams object');
    return state;
  };
  const changed = (state) => {
    if (state.url) state.url.search = serializeForm(state.list);
  };

  class URLSearchParams {
    constructor(init) {
      const list = [];
      if (init === undefined || init === null) {
      } else if (typeof init === 'object' || typeof init === 'function') {
        if (typeof init[Symbol.iterator] === 'function') {
          for (const pair of init) {
            const items = [...pair];
            if (items.length !== 2) {
              throw new TypeError('URLSearchParams: each pair must have exactly two items');
            }
            list.push([String(items[0]), String(items[1])]);
          }
        } else {
          for (const name of Object.keys(init)) list.push([name, String(init[name])]);
        }
      } else {
        list.push(...parseForm(String(init)));
      }
      params.set(this, { list, url: null });
    }
    get size() {
      return stateOf(this).list.length;
    }
    append(name, value) {
      const state = stateOf(this);
      state.list.push([String(name), String(value)]);
      changed(state);
    }
    delete(name, value) {
      const state = stateOf(this);
      name = String(name);
      state.list = state.list.filter(
        ([n, v]) => !(n === name && (value === undefined || v === String(value))),
      );
      changed(state);
    }
    get(name) {
      name = String(name);
      const found = stateOf(this).list.find(([n]) => n === name);
      return found ? found[1] : null;
    }
    getAll(name) {
      name = String(name);
      return stateOf(this)
        .list.filter(([n]) => n === name)
        .map(([, v]) => v);
    }
    has(name, value) {
      name = String(name);
      return stateOf(this).list.some(
        ([n, v]) => n === name && (value === undefined || v === String(value)),
      );
    }
    set(name, value) {
      const state = stateOf(this);
      name = String(name);
      value = String(value);
      const i = state.list.findIndex(([n]) => n === name);
      if (i < 0) {
        state.list.push([name, value]);
      } else {
        state.list[i][1] = value;
        state.list = state.list.filter(([n], j) => j <= i || n !== name);
      }
      changed(state);
    }
    sort() {
      const state = stateOf(this);
      state.list = state.list
        .map((pair, i) => [pair, i])
        .sort(([a, i], [b, j]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : i - j))
        .map(([pair]) => pair);
      changed(state);
    }
    forEach(callback, thisArg) {
      for (const [name, value] of stateOf(this).list.slice()) {
        callback.call(thisArg, value, name, this);
      }
    }
    *entries() {
      for (const [name, value] of stateOf(this).list.slice()) yield [name, value];
    }
    *keys() {
      for (const [name] of stateOf(this).list.slice()) yield name;
    }
    *values() {
      for (const [, value] of stateOf(this).list.slice()) yield value;
    }
    [Symbol.iterator]() {
      return this.entries();
    }
    toString() {
      return serializeForm(stateOf(this).list);
    }
    get [Symbol.toStringTag]() {
      return 'URLSearchParams';
    }
  }

  const attached = new WeakMap();
  const searchParamsOf = (url) => {
    let p = attached.get(url);
    if (!p) {
      p = new URLSearchParams();
      attached.set(url, p);
      stateOf(p).url = url;
    }
    stateOf(p).list = parseForm(url.search);
    return p;
  };

  return { URLSearchParams, searchParamsOf };
});
