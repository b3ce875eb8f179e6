-- editors/nvim/lua/mccom/init.lua — mccom's inline completions in Neovim (0.7 and later).
--
-- Neovim 0.7 has no inline-completion UI, so this plugin is one: it starts
-- `mccom lsp` with vim.lsp.start_client, asks textDocument/inlineCompletion
-- after each change in insert mode (debounced; the previous request is
-- cancelled), shows the item as ghost text (an extmark's virtual text) and
-- tells the server what the user did with it (mccom/didShow, didAccept,
-- didReject), which is what drives mccom's cascade:
--   <Tab>      accept the suggestion
--   <C-Right>  accept its next word
--   <Esc>      dismiss it: the server asks its large model, whose line appears
--              when ready (mccom/suggestion); <Esc> without a suggestion leaves
--              insert mode as usual
--   <M-]>      ask again explicitly (the large model answers)
-- Typing what the suggestion says keeps it (type-through); typing something
-- else rejects it. docs/lsp.md has the protocol. Not here: completion menus,
-- multi-line suggestions (mccom completes the rest of a line).
local M = {}

local api, lsp, uv = vim.api, vim.lsp, vim.loop
local ns = api.nvim_create_namespace('mccom')

M.config = {
  cmd = { 'mccom', 'lsp' },
  -- initializationOptions: slmModel, llmModel, tokenizer, llmUrl, llmApiKey, tau,
  -- retrieval, debounceMs, maxLineTokens, threads, contextTokens
  init_options = {},
  filetypes = nil, -- nil: every buffer that has a file name
  root_markers = { '.git', '.hg', 'pyproject.toml', 'setup.py' },
  debounce_ms = 50,
  keys = { accept = '<Tab>', accept_word = '<C-Right>', dismiss = '<Esc>', reask = '<M-]>' },
  hl_group = 'MccomSuggestion', -- linked to Comment unless defined
  hl_group_llm = 'MccomSuggestionLarge', -- linked to Comment unless defined
  show_source = false, -- append a label after the large model's suggestions
  label = ' [mccom: large model]',
  position_encodings = { 'utf-16' }, -- what the plugin offers ('utf-8' is cheaper)
}

local client_id = nil
local bufs = {} -- bufnr -> { timer, req, tick, ghost }
-- ghost = { id, text, row, col, source, extmark, tick (changedtick when drawn) }

local function buf_state(bufnr)
  local st = bufs[bufnr]
  if not st then
    st = {}
    bufs[bufnr] = st
  end
  return st
end

local function client()
  return client_id and lsp.get_client_by_id(client_id) or nil
end

local function encoding()
  local c = client()
  return c and c.offset_encoding or 'utf-16'
end

-- Character index of byte column `col` of `line` in the negotiated encoding.
local function to_char(line, col)
  local enc = encoding()
  if enc == 'utf-8' then
    return col
  end
  local u32, u16 = vim.str_utfindex(line, col)
  return enc == 'utf-16' and u16 or u32
end

local function cursor()
  local pos = api.nvim_win_get_cursor(0)
  return pos[1] - 1, pos[2]
end

local function uri_of(bufnr)
  return vim.uri_from_bufnr(bufnr)
end

local function clear(bufnr)
  local st = bufs[bufnr]
  if st and st.ghost then
    pcall(api.nvim_buf_del_extmark, bufnr, ns, st.ghost.extmark)
    st.ghost = nil
  end
end

local function notify(method, params)
  local c = client()
  if c then
    c.notify(method, params)
  end
end

local function render(bufnr, g)
  local line = api.nvim_buf_get_lines(bufnr, g.row, g.row + 1, false)[1] or ''
  local hl = g.source == 'llm' and M.config.hl_group_llm or M.config.hl_group
  local chunks = { { g.text, hl } }
  if g.source == 'llm' and M.config.show_source then
    table.insert(chunks, { M.config.label, hl })
  end
  local opts = {
    virt_text = chunks,
    -- at the end of the line the ghost text sits where the typed text would go;
    -- inside a line 0.7 cannot insert virtual text, so it goes after the line
    virt_text_pos = g.col >= #line and 'overlay' or 'eol',
    hl_mode = 'combine',
  }
  if g.extmark then
    opts.id = g.extmark
  end
  g.extmark = api.nvim_buf_set_extmark(bufnr, ns, g.row, math.min(g.col, #line), opts)
  g.tick = api.nvim_buf_get_changedtick(bufnr)
end

-- Show the first item of an InlineCompletionList at the cursor it was asked for.
local function show(bufnr, item, row, col)
  clear(bufnr)
  local text = item and item.insertText
  if type(text) == 'table' then
    text = text.value
  end
  if type(text) ~= 'string' or text == '' then
    return
  end
  text = text:gsub('\n.*', '') -- one line
  local m = item.mccom or {}
  local g = { id = m.id, text = text, row = row, col = col, source = m.source or 'slm' }
  buf_state(bufnr).ghost = g
  render(bufnr, g)
  notify('mccom/didShow', { textDocument = { uri = uri_of(bufnr) }, id = g.id })
end

local function request(bufnr, trigger)
  local c = client()
  if not c or api.nvim_get_current_buf() ~= bufnr or api.nvim_get_mode().mode:sub(1, 1) ~= 'i' then
    return
  end
  local st = buf_state(bufnr)
  if st.req then
    c.cancel_request(st.req)
    st.req = nil
  end
  local row, col = cursor()
  local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
  local params = {
    textDocument = { uri = uri_of(bufnr) },
    position = { line = row, character = to_char(line, col) },
    context = { triggerKind = trigger or 2 },
  }
  local tick = api.nvim_buf_get_changedtick(bufnr)
  local ok, id
  ok, id = c.request('textDocument/inlineCompletion', params, function(err, result)
    if st.req == id then
      st.req = nil
    end
    if err or not result then
      return
    end
    -- a stale answer is never shown
    local r2, c2 = cursor()
    if api.nvim_get_current_buf() ~= bufnr or api.nvim_buf_get_changedtick(bufnr) ~= tick
      or r2 ~= row or c2 ~= col or api.nvim_get_mode().mode:sub(1, 1) ~= 'i' then
      return
    end
    local items = result.items or result
    show(bufnr, items[1], row, col)
  end, bufnr)
  if ok then
    st.req = id
  end
end

local function schedule_request(bufnr)
  local st = buf_state(bufnr)
  if not st.timer then
    st.timer = uv.new_timer()
  end
  st.timer:stop()
  st.timer:start(M.config.debounce_ms, 0, vim.schedule_wrap(function()
    request(bufnr, 2)
  end))
end

-- Text changed in insert mode: type-through, or a rejection, then a new request.
local function on_change(bufnr)
  local st = buf_state(bufnr)
  local g = st.ghost
  if g then
    local row, col = cursor()
    local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
    local typed = (row == g.row and col >= g.col) and line:sub(g.col + 1, col) or nil
    if typed and typed ~= '' and g.text:sub(1, #typed) == typed and #typed < #g.text then
      -- type-through: the rest of the suggestion stays where the cursor is
      g.text = g.text:sub(#typed + 1)
      g.col = col
      render(bufnr, g)
    elseif not (typed == '' and row == g.row) then
      if typed and typed ~= '' and g.text:sub(1, #typed) ~= typed then
        notify('mccom/didReject', {
          textDocument = { uri = uri_of(bufnr) },
          id = g.id,
          typed = typed,
          position = { line = row, character = to_char(line, col) },
        })
      end
      clear(bufnr)
    end
  end
  schedule_request(bufnr)
end

function M.accept()
  local bufnr = api.nvim_get_current_buf()
  local st = buf_state(bufnr)
  local g = st.ghost
  if not g then
    return
  end
  clear(bufnr)
  api.nvim_buf_set_text(bufnr, g.row, g.col, g.row, g.col, { g.text })
  api.nvim_win_set_cursor(0, { g.row + 1, g.col + #g.text })
  notify('mccom/didAccept', { textDocument = { uri = uri_of(bufnr) }, id = g.id, accepted = g.text })
end

function M.accept_word()
  local bufnr = api.nvim_get_current_buf()
  local st = buf_state(bufnr)
  local g = st.ghost
  if not g then
    return
  end
  local word = g.text:match('^%s*[%w_]+') or g.text:match('^%s*[^%w_%s]+') or g.text:match('^%s+')
  if not word or #word >= #g.text then
    return M.accept()
  end
  api.nvim_buf_set_text(bufnr, g.row, g.col, g.row, g.col, { word })
  api.nvim_win_set_cursor(0, { g.row + 1, g.col + #word })
  g.text = g.text:sub(#word + 1)
  g.col = g.col + #word
  render(bufnr, g)
  notify('mccom/didAccept', { textDocument = { uri = uri_of(bufnr) }, id = g.id, accepted = word })
end

function M.dismiss()
  local bufnr = api.nvim_get_current_buf()
  local g = buf_state(bufnr).ghost
  if not g then
    return
  end
  local row, col = cursor()
  local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
  clear(bufnr)
  notify('mccom/didReject', {
    textDocument = { uri = uri_of(bufnr) },
    id = g.id,
    position = { line = row, character = to_char(line, col) },
  })
end

function M.reask()
  request(api.nvim_get_current_buf(), 1)
end

function M.visible()
  return buf_state(api.nvim_get_current_buf()).ghost ~= nil
end

-- The large model's line after a rejection (docs/lsp.md, "mccom/suggestion").
local function on_push(_, result)
  if not result or not result.textDocument then
    return
  end
  local bufnr = api.nvim_get_current_buf()
  if uri_of(bufnr) ~= result.textDocument.uri or api.nvim_get_mode().mode:sub(1, 1) ~= 'i' then
    return
  end
  if result.textDocument.version and lsp.util.buf_versions[bufnr]
    and result.textDocument.version ~= lsp.util.buf_versions[bufnr] then
    return
  end
  local row, col = cursor()
  local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
  local pos = result.position or {}
  if pos.line ~= row or pos.character ~= to_char(line, col) then
    return
  end
  show(bufnr, (result.items or {})[1], row, col)
end

local function find_root(path)
  local dir = vim.fn.fnamemodify(path, ':p:h')
  local home = uv.os_homedir()
  while dir and dir ~= '/' and dir ~= home do
    for _, m in ipairs(M.config.root_markers) do
      if uv.fs_stat(dir .. '/' .. m) then
        return dir
      end
    end
    local parent = vim.fn.fnamemodify(dir, ':h')
    if parent == dir then
      break
    end
    dir = parent
  end
  return vim.fn.fnamemodify(path, ':p:h')
end

local function start(bufnr)
  if client_id and client() then
    return client_id
  end
  local caps = lsp.protocol.make_client_capabilities()
  caps.general = { positionEncodings = M.config.position_encodings }
  client_id = lsp.start_client({
    name = 'mccom',
    cmd = M.config.cmd,
    root_dir = M.config.root_dir or find_root(api.nvim_buf_get_name(bufnr)),
    init_options = M.config.init_options,
    capabilities = caps,
    flags = { debounce_text_changes = 0 },
    handlers = { ['mccom/suggestion'] = on_push },
    on_init = function(c, result)
      -- the encoding the server chose (LSP 3.17 positionEncoding)
      local enc = result and result.capabilities and result.capabilities.positionEncoding
      if enc == 'utf-8' or enc == 'utf-16' or enc == 'utf-32' then
        c.offset_encoding = enc
      end
    end,
    on_exit = function()
      client_id = nil
    end,
  })
  return client_id
end

local function attach(bufnr)
  if api.nvim_buf_get_option(bufnr, 'buftype') ~= '' or api.nvim_buf_get_name(bufnr) == '' then
    return
  end
  local ft = api.nvim_buf_get_option(bufnr, 'filetype')
  if M.config.filetypes and not vim.tbl_contains(M.config.filetypes, ft) then
    return
  end
  local id = start(bufnr)
  if id then
    lsp.buf_attach_client(bufnr, id)
  end
end

local function map(lhs, fn_name, fallback)
  if not lhs or lhs == '' then
    return
  end
  vim.keymap.set('i', lhs, function()
    if M.visible() or fn_name == 'reask' then
      return '<Cmd>lua require("mccom").' .. fn_name .. '()<CR>'
    end
    return fallback
  end, { expr = true, silent = true, desc = 'mccom ' .. fn_name })
end

function M.setup(opts)
  M.config = vim.tbl_deep_extend('force', M.config, opts or {})
  api.nvim_set_hl(0, 'MccomSuggestion', { link = 'Comment', default = true })
  api.nvim_set_hl(0, 'MccomSuggestionLarge', { link = 'Comment', default = true })
  local group = api.nvim_create_augroup('mccom', { clear = true })
  api.nvim_create_autocmd({ 'BufReadPost', 'BufNewFile', 'FileType' }, {
    group = group,
    callback = function(a)
      attach(a.buf)
    end,
  })
  api.nvim_create_autocmd({ 'TextChangedI', 'TextChangedP' }, {
    group = group,
    callback = function(a)
      if bufs[a.buf] or client() then
        on_change(a.buf)
      end
    end,
  })
  -- The cursor moved without typing (arrows, mouse): the suggestion goes.
  -- (Typing moves it too, but then TextChangedI, which comes after, decides.)
  api.nvim_create_autocmd('CursorMovedI', {
    group = group,
    callback = function(a)
      local g = bufs[a.buf] and bufs[a.buf].ghost
      if not g or api.nvim_buf_get_changedtick(a.buf) ~= g.tick then
        return
      end
      local row, col = cursor()
      if row ~= g.row or col ~= g.col then
        clear(a.buf)
      end
    end,
  })
  api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, {
    group = group,
    callback = function(a)
      clear(a.buf)
      local st = bufs[a.buf]
      if st and st.timer then
        st.timer:stop()
      end
    end,
  })
  local k = M.config.keys
  map(k.accept, 'accept', k.accept)
  map(k.accept_word, 'accept_word', k.accept_word)
  map(k.dismiss, 'dismiss', k.dismiss)
  map(k.reask, 'reask', '')
  -- buffers already open
  for _, b in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_loaded(b) then
      attach(b)
    end
  end
end

return M
