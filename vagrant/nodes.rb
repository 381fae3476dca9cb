# The one definition of the kubeboot Vagrant lab: which machines exist, their private
# addresses and sizes, all derived from environment variables.
#
# Two readers share it, so they can never disagree:
#   - the Vagrantfile (`require_relative "nodes"`) creates the VMs from it;
#   - cluster-yaml.sh runs `ruby nodes.rb` and writes the kubeboot inventory from the
#     lines it prints (`vagrant ssh-config` does not know the private addresses).
# Run both with the same environment (see README.md).
#
# Environment (defaults in brackets):
#   KUBEBOOT_WORKERS        number of workers [2]
#   KUBEBOOT_SUBNET         private network, IPv4 CIDR [192.168.56.0/24]
#                           cp1 gets host .10 of it, workerN host .10+N
#   KUBEBOOT_BOX            Vagrant box [debian/bookworm64]
#   KUBEBOOT_CP_CPUS        control plane CPUs [2]     (kubeadm preflight wants >= 2)
#   KUBEBOOT_CP_MEMORY      control plane MiB [2048]   (kubeadm preflight wants >= 1700)
#   KUBEBOOT_WORKER_CPUS    worker CPUs [2]
#   KUBEBOOT_WORKER_MEMORY  worker MiB [2048]
#   KUBEBOOT_IFACE          the guest NIC on the private network [eth1]
#   KUBEBOOT_SSH_PUBKEY     optional: a public key file of yours to authorize on the VMs
#
# `ruby nodes.rb` prints tab-separated records:
#   iface   <nic>
#   podSubnet / serviceSubnet   <cidr>
#   node    <name>  <private ip>  <role>
# and exits 1 with a message on a bad setting.

require "ipaddr"

module KubebootNodes
  # kubeboot's default pod and service networks; the private network must not overlap
  # them, nor the NAT network every Vagrant VM has on eth0.
  POD_SUBNET = "10.244.0.0/16".freeze
  SERVICE_SUBNET = "10.96.0.0/12".freeze
  VAGRANT_NAT = "10.0.2.0/24".freeze
  # Host part of cp1's address; workerN gets FIRST_HOST + N.
  FIRST_HOST = 10

  Node = Struct.new(:name, :ip, :role, :cpus, :memory, keyword_init: true)

  class Lab
    attr_reader :box, :subnet, :netmask, :iface, :ssh_pubkey, :nodes

    def initialize(box:, subnet:, netmask:, iface:, ssh_pubkey:, nodes:)
      @box = box
      @subnet = subnet
      @netmask = netmask
      @iface = iface
      @ssh_pubkey = ssh_pubkey
      @nodes = nodes
    end
  end

  class Error < StandardError; end

  def self.int(env, key, default, min)
    raw = env.fetch(key, "").strip
    return default if raw.empty?

    value = begin
      Integer(raw, 10)
    rescue ArgumentError
      raise Error, "#{key}=#{raw.inspect} is not a whole number"
    end
    raise Error, "#{key}=#{value} is below the minimum #{min}" if value < min

    value
  end

  def self.text(env, key, default)
    raw = env.fetch(key, "").strip
    raw.empty? ? default : raw
  end

  def self.overlaps?(a, b)
    a.include?(b.to_range.first) || b.include?(a.to_range.first)
  end

  # Reads the lab from `env` (ENV by default); raises KubebootNodes::Error on bad input.
  def self.from_env(env = ENV)
    workers = int(env, "KUBEBOOT_WORKERS", 2, 0)
    cp_cpus = int(env, "KUBEBOOT_CP_CPUS", 2, 2)
    cp_memory = int(env, "KUBEBOOT_CP_MEMORY", 2048, 1700)
    worker_cpus = int(env, "KUBEBOOT_WORKER_CPUS", 2, 1)
    worker_memory = int(env, "KUBEBOOT_WORKER_MEMORY", 2048, 512)
    box = text(env, "KUBEBOOT_BOX", "debian/bookworm64")
    iface = text(env, "KUBEBOOT_IFACE", "eth1")
    raise Error, "KUBEBOOT_IFACE=#{iface.inspect} is not an interface name" unless iface =~ /\A[A-Za-z0-9_.-]{1,15}\z/

    subnet_text = text(env, "KUBEBOOT_SUBNET", "192.168.56.0/24")
    subnet = begin
      IPAddr.new(subnet_text)
    rescue IPAddr::Error
      raise Error, "KUBEBOOT_SUBNET=#{subnet_text.inspect} is not an IPv4 CIDR such as 192.168.56.0/24"
    end
    unless subnet.ipv4? && subnet_text.include?("/")
      raise Error, "KUBEBOOT_SUBNET=#{subnet_text.inspect} is not an IPv4 CIDR such as 192.168.56.0/24"
    end
    { "the pod network" => POD_SUBNET, "the service network" => SERVICE_SUBNET,
      "Vagrant's NAT network on eth0" => VAGRANT_NAT }.each do |what, cidr|
      if overlaps?(subnet, IPAddr.new(cidr))
        raise Error, "KUBEBOOT_SUBNET=#{subnet_text} overlaps #{what} (#{cidr})"
      end
    end

    size = subnet.to_range.count
    last_host = FIRST_HOST + workers
    # Keep the broadcast address (size - 1) free.
    if last_host >= size - 1
      raise Error, "KUBEBOOT_SUBNET=#{subnet_text} has no room for #{workers} workers " \
                   "(host numbers #{FIRST_HOST} to #{last_host} of it are needed)"
    end
    base = subnet.to_range.first.to_i
    address = ->(offset) { IPAddr.new(base + offset, Socket::AF_INET).to_s }

    nodes = [Node.new(name: "cp1", ip: address.call(FIRST_HOST), role: "control-plane",
                      cpus: cp_cpus, memory: cp_memory)]
    (1..workers).each do |i|
      nodes << Node.new(name: "worker#{i}", ip: address.call(FIRST_HOST + i), role: "worker",
                        cpus: worker_cpus, memory: worker_memory)
    end

    pubkey = nil
    key_path = text(env, "KUBEBOOT_SSH_PUBKEY", "")
    unless key_path.empty?
      path = File.expand_path(key_path)
      raise Error, "KUBEBOOT_SSH_PUBKEY=#{key_path}: no such file" unless File.file?(path)

      pubkey = File.read(path).strip
      unless pubkey =~ /\A(ssh-|ecdsa-|sk-)\S+ [A-Za-z0-9+\/=]+( .*)?\z/ && !pubkey.include?("\n")
        raise Error, "KUBEBOOT_SSH_PUBKEY=#{key_path} is not a single OpenSSH public key line"
      end
    end

    Lab.new(box: box, subnet: subnet_text, netmask: IPAddr.new("255.255.255.255").mask(subnet.prefix).to_s,
            iface: iface, ssh_pubkey: pubkey, nodes: nodes)
  end
end

if $PROGRAM_NAME == __FILE__
  begin
    lab = KubebootNodes.from_env
  rescue KubebootNodes::Error => e
    warn "nodes.rb: #{e.message}"
    exit 1
  end
  puts ["iface", lab.iface].join("\t")
  puts ["podSubnet", KubebootNodes::POD_SUBNET].join("\t")
  puts ["serviceSubnet", KubebootNodes::SERVICE_SUBNET].join("\t")
  lab.nodes.each { |n| puts ["node", n.name, n.ip, n.role].join("\t") }
end
