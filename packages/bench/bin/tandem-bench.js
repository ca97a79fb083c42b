#!/usr/bin/env node
import '../dist/bin/tandem-bench.js'
