#!/usr/bin/env ruby
# Reads a zip from standard input with rubyzip's streaming reader, Zip::InputStream
# (Debian ruby-zip, rubyzip 2.3.2), and prints one JSON line per entry, in archive order:
# {"name","dir","size","sha256"} -- the format of test/helpers/ZipStreamReader.java.
# "dir" is entry.name_is_directory? (name ends in "/"): entry.directory? is false for every
# entry that InputStream reads (its @ftype is fixed before the name is read).
# Output is printed only once the whole archive was read; any exception exits 1 with
# rubyzip's message on stderr.
#
# Zip::InputStream needs an IO it can seek and tell on (it calls io.seek(0) when opened,
# io.tell at every local header, and seeks to each next header, backwards too: its
# inflater reads 32 KiB ahead). $stdin on a pipe raises Errno::ESPIPE ("Illegal seek").
# Two ways to feed it a pipe, neither writes a file:
#   default     ForwardIO below: a read-only IO shim over $stdin that keeps a window of
#               recent bytes, so rubyzip's tell and short backward seeks work; memory is
#               bounded (KEEP bytes behind the read position). A seek before the window
#               raises Errno::ESPIPE.
#   --stringio  the way rubyzip's docs and issues show for non-file input: read all of
#               stdin into a StringIO (memory = archive size) and open that.
require 'zip'
require 'digest'
require 'stringio'

class ForwardIO
  KEEP = 1 << 20 # bytes kept behind the current position for backward seeks

  def initialize(io)
    @io = io
    @io.binmode
    @buf = String.new(encoding: Encoding::BINARY) # bytes [@start, @start + @buf.bytesize)
    @start = 0
    @pos = 0
    @eof = false
  end

  def dup = self # rubyzip dups the IO it is given; share the one window
  def tell = @pos
  alias pos tell

  def seek(offset, whence = IO::SEEK_SET)
    target = case whence
             when IO::SEEK_SET then offset
             when IO::SEEK_CUR then @pos + offset
             else raise Errno::ESPIPE, 'ForwardIO: SEEK_END on a pipe'
             end
    raise Errno::ESPIPE, "ForwardIO: seek to #{target}, before the kept window at #{@start}" if target < @start
    @pos = target
    0
  end

  def read(length = nil, outbuf = nil)
    if length.nil?
      fill(Float::INFINITY)
    else
      fill(@pos + length)
    end
    off = @pos - @start
    avail = [@buf.bytesize - off, 0].max
    n = length.nil? ? avail : [length, avail].min
    data = @buf.byteslice(off, n) || String.new(encoding: Encoding::BINARY)
    @pos += data.bytesize
    trim
    return nil if length && length > 0 && data.empty?
    outbuf ? outbuf.replace(data) : data
  end

  def eof
    fill(@pos + 1)
    @pos >= @start + @buf.bytesize
  end
  alias eof? eof

  def close = @io.close
  def binmode = self

  private

  def fill(upto)
    while !@eof && @start + @buf.bytesize < upto
      chunk = @io.read(1 << 16)
      if chunk.nil? then @eof = true else @buf << chunk end
    end
  end

  def trim
    drop = @pos - @start - KEEP
    return unless drop > (1 << 20)
    @buf.slice!(0, drop) # BINARY string: byte offsets
    @start += drop
  end
end

# A JSON string like the Java helper's: every UTF-16 unit outside 0x20..0x7e as \uXXXX.
# rubyzip hands names over as raw bytes; they are read as UTF-8 (as Java's ZipInputStream
# does), and a name that is not valid UTF-8 is written byte by byte as \u00XX.
def quote(raw)
  s = raw.dup.force_encoding(Encoding::UTF_8)
  units = s.valid_encoding? ? s.encode(Encoding::UTF_16BE).unpack('n*') : raw.bytes
  out = +'"'
  units.each do |c|
    if c == 0x22 || c == 0x5c then out << '\\' << c.chr
    elsif c < 0x20 || c > 0x7e then out << format('\\u%04x', c)
    else out << c.chr
    end
  end
  out << '"'
end

begin
  io = ARGV.include?('--stringio') ? StringIO.new($stdin.binmode.read) : ForwardIO.new($stdin)
  out = +''
  buf = String.new(encoding: Encoding::BINARY)
  Zip::InputStream.open(io) do |zis|
    while (entry = zis.get_next_entry)
      sha = Digest::SHA256.new
      size = 0
      while zis.read(1 << 16, buf)
        sha.update(buf)
        size += buf.bytesize
      end
      out << %({"name":#{quote(entry.name)},"dir":#{entry.name_is_directory?},"size":#{size},"sha256":"#{sha.hexdigest}"}\n)
    end
  end
  $stdout.write(out)
  $stdout.flush
rescue StandardError => e
  warn "#{e.class}: #{e.message}"
  exit 1
end
