-- The shared behavioural specs against the local objects (this host).
local H = require 'spec.helper'

require('spec.support.shared_behaviour')('shared behaviour: local objects', {
  setup = function() return H.ipc end,
  child = function() return 'NS = ipc' end,
}, _ENV)
